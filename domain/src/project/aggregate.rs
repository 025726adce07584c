//! The [`Project`] aggregate: its state and the rules that guard it.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::project::lifecycle::{self, PendingRequest};
use crate::project::{
    ProjectCommand, ProjectError, ProjectEvent, ProjectLookup, ProjectServices, ProjectStatus,
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

    /// Decides what a command means for this project: the events to record
    /// (none for a no-op, two only when a restart's stop completes).
    async fn decide(
        &self,
        command: ProjectCommand,
        lookup: &dyn ProjectLookup,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let one = |event| Ok(vec![event]);
        match command {
            ProjectCommand::CreateProject {
                project_id,
                name,
                path,
            } => one(self.create(project_id, name, path, lookup).await?),
            ProjectCommand::RenameProject { name } => Ok(self
                .changeable()?
                .rename(name, lookup)
                .await?
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

    async fn create(
        &self,
        project_id: ProjectId,
        name: ProjectName,
        path: ProjectPath,
        lookup: &dyn ProjectLookup,
    ) -> Result<ProjectEvent, ProjectError> {
        if self.exists() {
            return Err(ProjectError::AlreadyExists);
        }
        let slug = slug_of(&name)?;
        let (holder, ports) = lookup.for_creation(&slug, project_id).await?;
        slug_free(&slug, holder, project_id)?;
        let ports = ports.ok_or(ProjectError::PortsExhausted)?;
        Ok(ProjectEvent::ProjectCreated {
            project_id,
            name,
            slug,
            path,
            ports,
        })
    }
}

impl State {
    async fn rename(
        &self,
        name: ProjectName,
        lookup: &dyn ProjectLookup,
    ) -> Result<Option<ProjectEvent>, ProjectError> {
        if name == self.name {
            // Renaming to the current name changes nothing, so it records
            // nothing; repeating a rename is harmless.
            return Ok(None);
        }
        let slug = slug_of(&name)?;
        // A new spelling of the same slug ("My App" -> "my app") keeps the
        // reservation this project already holds; no need to ask.
        if slug != self.slug {
            slug_free(&slug, lookup.slug_holder(&slug).await?, self.id)?;
        }
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
    type Command = ProjectCommand;
    type Event = ProjectEvent;
    type Error = ProjectError;
    type Services = ProjectServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command, services.lookup()).await? {
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
