//! Executing commands against the `Project` aggregate on postgres-es, with
//! optimistic concurrency and a clear outcome for every failure.

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventRepository, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore};
use domain::{Project, ProjectCommand, ProjectError, ProjectId, ProjectServices, Slug};
use sqlx::PgPool;

use crate::append::{Appender, EventRepository};
use crate::error::is_unavailable_boxed;
use crate::metadata::CommandMetadata;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How often a command without an expected version is retried after losing a
/// race (another command committed first, or proposed ports were taken).
const MAX_ATTEMPTS: usize = 5;

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
}

/// Why a command was not executed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain rejected the command; nothing changed.
    #[error(transparent)]
    Rejected(ProjectError),
    /// `expected_version` did not match, or the command kept losing races.
    #[error("{}", conflict_message(*.expected, *.actual))]
    Conflict {
        /// What the client expected.
        expected: Option<u64>,
        /// What the store holds.
        actual: u64,
    },
    /// The database cannot be reached; retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A bug or corrupt data.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

fn conflict_message(expected: Option<u64>, actual: u64) -> String {
    match expected {
        Some(expected) => format!(
            "the project is at version {actual}, not the expected version {expected}; reload it and try again"
        ),
        None => "the project was changed concurrently; reload it and try again".to_owned(),
    }
}

impl CommandError {
    fn from_aggregate(err: AggregateError<ProjectError>) -> Self {
        match err {
            AggregateError::UserError(err) => Self::from_domain(err),
            AggregateError::AggregateConflict => Self::Conflict {
                expected: None,
                actual: 0,
            },
            AggregateError::DatabaseConnectionError(err) => Self::Unavailable(err),
            AggregateError::DeserializationError(err) => Self::Internal(err),
            AggregateError::UnexpectedError(err) => Self::from_boxed(err),
        }
    }

    fn from_domain(err: ProjectError) -> Self {
        match err {
            ProjectError::Lookup(lookup) => {
                if is_unavailable_boxed(lookup.source.as_ref()) {
                    Self::Unavailable(Box::new(lookup))
                } else {
                    Self::Internal(Box::new(lookup))
                }
            }
            rejected => Self::Rejected(rejected),
        }
    }

    fn from_boxed(err: BoxError) -> Self {
        if is_unavailable_boxed(err.as_ref()) {
            Self::Unavailable(err)
        } else {
            Self::Internal(err)
        }
    }

    fn from_sqlx(err: sqlx::Error) -> Self {
        Self::from_boxed(Box::new(err))
    }
}

/// Events between two snapshots of a project: a command loads the latest
/// snapshot and at most this many events after it, however long the
/// project's history.
pub const SNAPSHOT_EVERY: usize = 50;

/// The event store of `Project`s in `repo`, as every part of the hub that
/// loads or commits projects uses it: with the upcasters of older event
/// shapes, taking a snapshot (in the same transaction as the events) every
/// [`SNAPSHOT_EVERY`] events. A snapshot that no longer deserializes (the
/// aggregate's shape changed) is ignored and the history replayed; the
/// `snapshots` table can be emptied at any time while no hub runs.
pub fn project_store<R: PersistedEventRepository>(repo: R) -> PersistedEventStore<R, Project> {
    PersistedEventStore::new_snapshot_store(repo, SNAPSHOT_EVERY)
        .with_upcasters(domain::project::upcast::upcasters())
}

/// Runs project commands: load, decide, commit.
///
/// cqrs-es' `CqrsFramework` does not report the new version nor check an
/// expected one, so the bus drives the event store directly through
/// cqrs-es' `EventStore` trait, which gives both. Commits go through the
/// [`Appender`], which appends concurrent commands in shared transactions
/// (group commit); each still gets its own outcome.
pub struct CommandBus {
    store: PersistedEventStore<EventRepository, Project>,
    services: ProjectServices,
    pool: PgPool,
}

impl CommandBus {
    /// A bus reading from `pool`, deciding with `services` and committing
    /// through `appender`.
    pub fn new(pool: PgPool, services: ProjectServices, appender: Appender) -> Self {
        Self {
            store: project_store(EventRepository::new(pool.clone(), appender)),
            services,
            pool,
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
        let aggregate_id = id.to_string();
        let mut last_seen = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            // A create is for a new id (the API makes them): nothing to load.
            // Should the id exist after all, the commit loses on the event's
            // unique sequence, and the retry loads it and is rejected.
            let context = if attempt == 1 && matches!(command, ProjectCommand::CreateProject { .. })
            {
                EventStoreAggregateContext {
                    aggregate_id: aggregate_id.clone(),
                    aggregate: Project::default(),
                    current_sequence: 0,
                    current_snapshot: None,
                }
            } else {
                self.store
                    .load_aggregate(&aggregate_id)
                    .await
                    .map_err(CommandError::from_aggregate)?
            };
            let current = context.current_sequence as u64;
            last_seen = current;
            if let Some(expected) = expected_version {
                if expected != current {
                    return Err(CommandError::Conflict {
                        expected: Some(expected),
                        actual: current,
                    });
                }
            }
            // `EventSink::write` applies each event to the aggregate it is
            // given, and the store's commit applies them again to the
            // context's aggregate to take a snapshot: it must get the state
            // from before the command, or the snapshot would count the
            // command's events twice.
            let mut decided = context.aggregate.clone();
            let sink = EventSink::default();
            decided
                .handle(command.clone(), &self.services, &sink)
                .await
                .map_err(CommandError::from_domain)?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(Executed {
                    version: current,
                    events: 0,
                    project: decided,
                });
            }
            let count = events.len();
            match self.store.commit(events, context, metadata.to_map()).await {
                Ok(_) => {
                    return Ok(Executed {
                        version: current + count as u64,
                        events: count,
                        project: decided,
                    });
                }
                Err(AggregateError::AggregateConflict) => {
                    // A unique violation: another event took this sequence
                    // number, or the slug or ports (see the reservation trigger).
                    if let Some(slug) = claimed_slug(&command) {
                        if self.slug_taken_by_other(&slug, &aggregate_id).await? {
                            return Err(CommandError::Rejected(ProjectError::NameTaken {
                                slug: slug.as_str().to_owned(),
                            }));
                        }
                    }
                    if expected_version.is_some() {
                        let actual = self.current_version(&aggregate_id).await?;
                        return Err(CommandError::Conflict {
                            expected: expected_version,
                            actual,
                        });
                    }
                    tracing::debug!(attempt, "command lost a race; retrying on fresh state");
                }
                Err(err) => return Err(CommandError::from_aggregate(err)),
            }
        }
        Err(CommandError::Conflict {
            expected: None,
            actual: last_seen,
        })
    }

    async fn slug_taken_by_other(
        &self,
        slug: &Slug,
        aggregate_id: &str,
    ) -> Result<bool, CommandError> {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT project_id FROM project_slugs WHERE slug = $1")
                .bind(slug.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(CommandError::from_sqlx)?;
        Ok(holder.is_some_and(|holder| holder != aggregate_id))
    }

    async fn current_version(&self, aggregate_id: &str) -> Result<u64, CommandError> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(Project::TYPE)
        .bind(aggregate_id)
        .fetch_one(&self.pool)
        .await
        .map_err(CommandError::from_sqlx)?;
        Ok(version.unwrap_or(0).max(0) as u64)
    }
}

/// The slug a command would claim, if it claims one.
fn claimed_slug(command: &ProjectCommand) -> Option<Slug> {
    match command {
        ProjectCommand::CreateProject { name, .. } | ProjectCommand::RenameProject { name } => {
            Slug::from_name(name).ok()
        }
        _ => None,
    }
}
