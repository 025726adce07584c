//! Executing commands against the `Project` aggregate: look up the facts a
//! decision needs, decide, commit, with optimistic concurrency and a clear
//! outcome for every failure.
//!
//! The loop (load, decide, commit, retry a lost race) is the shared
//! executor (`crate::execute`); what is the project's own is here: which facts a command
//! needs ([`Project::question`], answered by [`PgProjectLookup`]), the
//! synchronous [`Project::decide`], and that a race lost to another
//! project's claim on the slug is `NameTaken`.

use cqrs_es::persist::{PersistedEventRepository, PersistedEventStore};
use domain::{Facts, Project, ProjectCommand, ProjectError, ProjectEvent, ProjectId};
use sqlx::PgPool;

use crate::append::Appender;
use crate::execute::{CommandError, Decider, Executor};
use crate::feed::FeedPosition;
use crate::lookup::PgProjectLookup;
use crate::metadata::CommandMetadata;

/// The outcome of a command that was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The aggregate's version after the command (its last event's sequence).
    pub version: u64,
    /// How many events the command recorded (0 for a no-op such as renaming
    /// to the same name).
    pub events: usize,
    /// The project as the command left it (its events applied).
    pub project: Project,
    /// Where the command's last event is in the feed's order: a consumer
    /// whose checkpoint reached it has seen all of them. `None` when the
    /// command recorded nothing.
    pub position: Option<FeedPosition>,
}

/// Events between two snapshots of a project: a command loads the latest
/// snapshot and at most this many events after it, however long the
/// project's history.
pub const SNAPSHOT_EVERY: usize = 50;

/// The event store of `Project`s in `repo`, as every part of the hub that
/// loads projects uses it: with the upcasters of older event shapes, and
/// from the latest snapshot (taken by the bus, in the same transaction as
/// the events, every [`SNAPSHOT_EVERY`] events). A snapshot that no longer
/// deserializes (the aggregate's shape changed) is ignored and the history
/// replayed; the `snapshots` table can be emptied at any time while no hub
/// runs.
pub fn project_store<R: PersistedEventRepository>(repo: R) -> PersistedEventStore<R, Project> {
    PersistedEventStore::new_snapshot_store(repo, SNAPSHOT_EVERY)
        .with_upcasters(domain::project::upcast::upcasters())
}

/// Runs project commands: load, look up, decide, commit.
///
/// cqrs-es' `CqrsFramework` does not report the new version nor check an
/// expected one, so the bus drives the store itself (through the shared
/// executor, `crate::execute`). Commits go through the [`Appender`], which appends
/// concurrent commands in shared transactions (group commit); each still
/// gets its own outcome.
pub struct CommandBus {
    executor: Executor<Project>,
    lookup: PgProjectLookup,
}

impl CommandBus {
    /// A bus reading from `pool`, looking facts up with `lookup` and
    /// committing through `appender`.
    pub fn new(pool: PgPool, lookup: PgProjectLookup, appender: Appender) -> Self {
        Self {
            executor: Executor::new(
                pool,
                appender,
                Some(SNAPSHOT_EVERY),
                domain::project::upcast::upcasters(),
            ),
            lookup,
        }
    }

    /// Executes `command` on project `id`.
    ///
    /// With `expected_version`, the command only runs if the project is at
    /// exactly that version and a concurrent change gives
    /// [`CommandError::Conflict`]. Without it, a lost race is retried on the
    /// fresh state (so a concurrent duplicate `StartProject` is rejected as
    /// already running rather than as a conflict).
    ///
    /// # Errors
    /// See [`CommandError`].
    #[tracing::instrument(skip_all, fields(project_id = %id, command = command.name(), correlation_id = %metadata.correlation_id))]
    pub async fn execute(
        &self,
        id: ProjectId,
        command: ProjectCommand,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
    ) -> Result<Executed, CommandError> {
        let step = ProjectStep {
            id,
            command,
            lookup: &self.lookup,
        };
        let outcome = self
            .executor
            .execute(&id.to_string(), expected_version, metadata, &step)
            .await?;
        Ok(Executed {
            version: outcome.version,
            events: outcome.events,
            project: outcome.aggregate,
            position: outcome.appended.map(|appended| appended.last),
        })
    }
}

/// One project command, as the [`Executor`] decides it.
struct ProjectStep<'a> {
    id: ProjectId,
    command: ProjectCommand,
    lookup: &'a PgProjectLookup,
}

impl Decider<Project> for ProjectStep<'_> {
    /// A create is for a new id (the API makes them): nothing to load.
    fn is_new(&self) -> bool {
        matches!(self.command, ProjectCommand::CreateProject { .. })
    }

    /// Asks what the project needs to know, looks it up, and decides.
    async fn decide(&self, project: &Project) -> Result<Vec<ProjectEvent>, CommandError> {
        let facts = match project.question(&self.command) {
            Some(question) => self
                .lookup
                .answer(&question)
                .await
                .map_err(CommandError::from_infra)?,
            None => Facts::default(),
        };
        project
            .decide(self.command.clone(), facts)
            .map_err(CommandError::Rejected)
    }

    /// A unique violation: another event took this sequence number, or the
    /// slug or ports (see the reservation trigger). A slug that another
    /// project now holds is `NameTaken`; anything else is tried again with
    /// fresh facts.
    async fn lost_race(&self, project: &Project) -> Result<(), CommandError> {
        let Some(question) = project.question(&self.command) else {
            return Ok(());
        };
        let slug = question.slug();
        let holder = self
            .lookup
            .slug_holder(slug)
            .await
            .map_err(CommandError::from_infra)?;
        match holder {
            Some(holder) if holder != self.id => {
                Err(CommandError::Rejected(ProjectError::NameTaken {
                    slug: slug.as_str().to_owned(),
                }))
            }
            _ => Ok(()),
        }
    }
}
