//! The [`Project`] aggregate: its state and the rules that guard it.
//!
//! Deciding is a plain function of the state, the command and the facts
//! about other projects looked up before ([`Project::question`], then
//! [`Project::decide`]): it awaits nothing. `Aggregate::handle` calls it
//! for cqrs-es (and its `TestFramework`); the command bus calls it
//! directly.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::project::lifecycle::{self, PendingRequest};
use crate::project::{
    Decide, Facts, ProjectCommand, ProjectError, ProjectEvent, ProjectStatus, Question,
};
use crate::{Ports, ProjectId, ProjectName, ProjectPath, Slug};

/// One software project, rebuilt from its events.
///
/// The default value is a project that has not been created yet; every
/// accessor returns `None` for it.
///
/// Its JSON form is the hub's snapshot of a project. Unknown fields are
/// refused, so a snapshot of another shape fails to load (and the history
/// is replayed instead) rather than loading as a different state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// `None` until `ProjectCreated`. Everything a created project has lives
    /// together, so a half-created project cannot be represented.
    state: Option<State>,
    /// How many of its events were applied: after replaying a history, the
    /// sequence of its last event. `apply` has no access to sequence
    /// numbers, so the aggregate counts; this is what lets a request be
    /// named by the sequence of its event.
    #[serde(default)]
    version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct State {
    pub(super) id: ProjectId,
    pub(super) name: ProjectName,
    pub(super) slug: Slug,
    pub(super) path: ProjectPath,
    pub(super) ports: Ports,
    pub(super) status: ProjectStatus,
    /// The start, stop or restart requested and not completed yet: `Some`
    /// exactly while the status is `Starting` or `Stopping`.
    #[serde(default)]
    pub(super) pending: Option<PendingRequest>,
}

impl Project {
    /// Its id, once created.
    pub fn id(&self) -> Option<ProjectId> {
        self.state.as_ref().map(|s| s.id)
    }

    /// Its current display name, once created.
    pub fn name(&self) -> Option<&ProjectName> {
        self.state.as_ref().map(|s| &s.name)
    }

    /// Its current slug, once created.
    pub fn slug(&self) -> Option<&Slug> {
        self.state.as_ref().map(|s| &s.slug)
    }

    /// Its directory, once created.
    pub fn path(&self) -> Option<&ProjectPath> {
        self.state.as_ref().map(|s| &s.path)
    }

    /// Its ports, once created. A deleted project still reports the ports
    /// it had, though they are free for others.
    pub fn ports(&self) -> Option<Ports> {
        self.state.as_ref().map(|s| s.ports)
    }

    /// Its lifecycle status, once created.
    pub fn status(&self) -> Option<ProjectStatus> {
        self.state.as_ref().map(|s| s.status)
    }

    /// Whether it was ever created. A deleted project still exists in this
    /// sense: it can be read, but not changed.
    pub fn exists(&self) -> bool {
        self.state.is_some()
    }

    /// The number of events applied: the aggregate's version, and the
    /// sequence of its last event (0 before creation).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The start, stop or restart waiting for the orchestrator, if any.
    pub fn pending_request(&self) -> Option<PendingRequest> {
        self.state.as_ref().and_then(|s| s.pending)
    }

    /// The state of a project that commands other than create may change.
    fn changeable(&self) -> Result<&State, ProjectError> {
        match &self.state {
            None => Err(ProjectError::NotFound),
            Some(state) if state.status == ProjectStatus::Deleted => Err(ProjectError::Deleted),
            Some(state) => Ok(state),
        }
    }

    /// What must be looked up about other projects before `command` can be
    /// decided: `None` when its decision needs nothing (or refuses it
    /// anyway). The answer goes to [`Project::decide`] as [`Facts`].
    pub fn question(&self, command: &ProjectCommand) -> Option<Question> {
        match command {
            ProjectCommand::CreateProject { name, .. } => self
                .creation_slug(name)
                .ok()
                .map(|slug| Question::Creation { slug }),
            ProjectCommand::RenameProject { name } => {
                match self.changeable().ok()?.renaming_to(name) {
                    Ok(Rename::NewSlug(slug)) => Some(Question::SlugHolder { slug }),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Decides what `command` means for this project, knowing `facts` (the
    /// answer to [`Project::question`]): the events to record (none for a
    /// no-op, two only when a restart's stop completes), or why not.
    ///
    /// # Errors
    ///
    /// [`ProjectError`]: the command does not fit the project's state, or
    /// the facts (a taken slug, no free ports).
    pub fn decide(
        &self,
        command: ProjectCommand,
        facts: Facts,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let one = |event| Ok(vec![event]);
        match command {
            ProjectCommand::CreateProject {
                project_id,
                name,
                path,
            } => one(self.create(project_id, name, path, facts)?),
            ProjectCommand::RenameProject { name } => Ok(self
                .changeable()?
                .rename(name, facts)?
                .into_iter()
                .collect()),
            ProjectCommand::StartProject => one(lifecycle::start(self.changeable()?)?),
            ProjectCommand::StopProject => one(lifecycle::stop(self.changeable()?)?),
            ProjectCommand::RestartProject => one(lifecycle::restart(self.changeable()?)?),
            ProjectCommand::DeleteProject => one(lifecycle::delete(self.changeable()?)?),
            ProjectCommand::CompleteStart { request } => {
                one(lifecycle::complete_start(self.changeable()?, request)?)
            }
            ProjectCommand::FailStart { request, reason } => {
                one(lifecycle::fail_start(self.changeable()?, request, reason)?)
            }
            ProjectCommand::CompleteStop { request } => {
                lifecycle::complete_stop(self.changeable()?, request)
            }
            ProjectCommand::FailStop { request, reason } => {
                one(lifecycle::fail_stop(self.changeable()?, request, reason)?)
            }
        }
    }

    /// The slug a project named `name` would be created with, if this
    /// project may be created at all.
    fn creation_slug(&self, name: &ProjectName) -> Result<Slug, ProjectError> {
        if self.exists() {
            return Err(ProjectError::AlreadyExists);
        }
        slug_of(name)
    }

    fn create(
        &self,
        project_id: ProjectId,
        name: ProjectName,
        path: ProjectPath,
        facts: Facts,
    ) -> Result<ProjectEvent, ProjectError> {
        let slug = self.creation_slug(&name)?;
        slug_free(&slug, facts.slug_holder, project_id)?;
        let ports = facts.free_ports.ok_or(ProjectError::PortsExhausted)?;
        Ok(ProjectEvent::ProjectCreated {
            project_id,
            name,
            slug,
            path,
            ports,
        })
    }
}

/// What renaming a project to a name changes.
enum Rename {
    /// It is the current name: nothing.
    Unchanged,
    /// A new spelling of the current slug ("My App" -> "my app"): the name,
    /// and the project keeps the slug's reservation it already holds.
    Respelled(Slug),
    /// A new slug, which no other live project may hold.
    NewSlug(Slug),
}

impl State {
    fn renaming_to(&self, name: &ProjectName) -> Result<Rename, ProjectError> {
        if *name == self.name {
            return Ok(Rename::Unchanged);
        }
        let slug = slug_of(name)?;
        Ok(if slug == self.slug {
            Rename::Respelled(slug)
        } else {
            Rename::NewSlug(slug)
        })
    }

    fn rename(
        &self,
        name: ProjectName,
        facts: Facts,
    ) -> Result<Option<ProjectEvent>, ProjectError> {
        let slug = match self.renaming_to(&name)? {
            // Renaming to the current name changes nothing, so it records
            // nothing; repeating a rename is harmless.
            Rename::Unchanged => return Ok(None),
            Rename::Respelled(slug) => slug,
            Rename::NewSlug(slug) => {
                slug_free(&slug, facts.slug_holder, self.id)?;
                slug
            }
        };
        Ok(Some(ProjectEvent::ProjectRenamed { name, slug }))
    }
}

fn slug_of(name: &ProjectName) -> Result<Slug, ProjectError> {
    Slug::from_name(name).map_err(ProjectError::InvalidName)
}

/// Fails with `NameTaken` when `holder`, the live project holding `slug`,
/// is another than `own_id`. The store's unique reservation still has the
/// last word if two commands race past this check.
fn slug_free(
    slug: &Slug,
    holder: Option<ProjectId>,
    own_id: ProjectId,
) -> Result<(), ProjectError> {
    match holder {
        Some(holder) if holder != own_id => Err(ProjectError::NameTaken {
            slug: slug.to_string(),
        }),
        _ => Ok(()),
    }
}

impl Aggregate for Project {
    const TYPE: &'static str = "Project";
    type Command = Decide;
    type Event = ProjectEvent;
    type Error = ProjectError;
    /// Nothing: the facts a decision needs come with the command.
    type Services = ();

    /// [`Project::decide`]; async only because cqrs-es' trait is.
    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let Decide { command, facts } = command;
        for event in self.decide(command, facts)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        // `apply` cannot fail. Events other than `ProjectCreated` on a
        // project that was never created cannot come from `handle`, so they
        // find no state and change nothing (not even the version).
        if let ProjectEvent::ProjectCreated {
            project_id,
            name,
            slug,
            path,
            ports,
        } = event
        {
            self.version += 1;
            self.state = Some(State {
                id: project_id,
                name,
                slug,
                path,
                ports,
                status: ProjectStatus::Stopped,
                pending: None,
            });
            return;
        }
        let Some(state) = &mut self.state else {
            return;
        };
        self.version += 1;
        match event {
            ProjectEvent::ProjectRenamed { name, slug } => {
                state.name = name;
                state.slug = slug;
            }
            lifecycle_event => lifecycle::apply(state, self.version, lifecycle_event),
        }
    }
}
