//! One load-decide-commit loop for every command: project commands (the
//! [`CommandBus`](crate::CommandBus)) and published integration events (the
//! [`IntegrationPublisher`](crate::IntegrationPublisher)).
//!
//! [`Executor::execute`] loads the aggregate (from its snapshot and the
//! events after it, through postgres-es), checks the expected version, asks
//! the caller's [`Decider`] for the events, and commits them through the
//! [`Appender`] (group commit). A commit that loses a race (a unique
//! violation: another commit took the sequence number, or what the store
//! reserves) is retried on the fresh state, unless the caller expected a
//! version (then the answer is `Conflict`) or its decider says what the
//! loss means.
//!
//! Layout:
//! - this file: [`Executor`], [`Decider`] and the loop;
//! - `commit`: the rows a decision writes (its events, and the snapshot when
//!   one is due);
//! - `error`: [`CommandError`], why a command was not executed.

mod commit;
mod error;

use cqrs_es::persist::{EventStoreAggregateContext, EventUpcaster, PersistedEventStore};
use cqrs_es::{Aggregate, EventStore};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

use crate::append::{AppendError, Appended, Appender};
use crate::metadata::CommandMetadata;

pub use error::CommandError;

/// How often a command without an expected version is tried on fresh state
/// after losing a race (another command committed first, or proposed ports
/// were taken).
const MAX_ATTEMPTS: usize = 5;

/// What one kind of command brings to [`Executor::execute`]: its decision
/// on the loaded aggregate, and what a lost race means for it.
pub(crate) trait Decider<A: Aggregate> {
    /// Whether the aggregate id is new, so the first attempt loads nothing.
    /// Should it exist after all, the commit loses on its first event's
    /// unique sequence number, and the retry loads it.
    fn is_new(&self) -> bool;

    /// The events `aggregate` (as loaded) records for the command: none
    /// for a no-op. May look facts up first.
    ///
    /// # Errors
    /// `Rejected` with the domain's reason, or a failed lookup.
    async fn decide(&self, aggregate: &A) -> Result<Vec<A::Event>, CommandError<A::Error>>;

    /// The commit of what was decided on `aggregate` lost a race. `Ok`
    /// goes on as for any lost race: a retry, or `Conflict` when a version
    /// was expected.
    ///
    /// # Errors
    /// What the loss means instead (e.g. a slug now held by another).
    async fn lost_race(&self, aggregate: &A) -> Result<(), CommandError<A::Error>>;
}

/// A command that was executed.
#[derive(Debug)]
pub(crate) struct Outcome<A> {
    /// The aggregate's version after the command (its last event's
    /// sequence).
    pub version: u64,
    /// How many events the command recorded.
    pub events: usize,
    /// The aggregate as the command left it (its events applied).
    pub aggregate: A,
    /// What the store made of the commit; `None` for a no-op.
    pub appended: Option<Appended>,
}

/// Loads, decides and commits commands of aggregate type `A`.
pub(crate) struct Executor<A: Aggregate> {
    /// Loads aggregates: the snapshot, the events after it, upcast.
    store: PersistedEventStore<PostgresEventRepository, A>,
    /// Events between two snapshots, or `None` for no snapshots.
    snapshot_every: Option<usize>,
    appender: Appender,
    pool: PgPool,
}

impl<A: Aggregate + Clone> Executor<A> {
    /// Loads from `pool`, rewriting stored events of older shapes with
    /// `upcasters`, and commits through `appender`, with a snapshot every
    /// `snapshot_every` events if given. A snapshot that no longer
    /// deserializes (the aggregate's shape changed) is ignored and the
    /// history replayed.
    pub(crate) fn new(
        pool: PgPool,
        appender: Appender,
        snapshot_every: Option<usize>,
        upcasters: Vec<Box<dyn EventUpcaster>>,
    ) -> Self {
        let repo = PostgresEventRepository::new(pool.clone());
        let store = match snapshot_every {
            Some(every) => PersistedEventStore::new_snapshot_store(repo, every),
            None => PersistedEventStore::new_event_store(repo),
        };
        Self {
            store: store.with_upcasters(upcasters),
            snapshot_every,
            appender,
            pool,
        }
    }

    /// Executes the command `decider` decides on aggregate `aggregate_id`,
    /// its events carrying `metadata`.
    ///
    /// With `expected_version`, the command only runs if the aggregate is at
    /// exactly that version, and a lost race answers `Conflict`. Without
    /// it, a lost race is retried on the fresh state (so a concurrent
    /// duplicate `StartProject` is rejected as already running rather than
    /// as a conflict), up to [`MAX_ATTEMPTS`] times.
    ///
    /// # Errors
    /// See [`CommandError`].
    pub(crate) async fn execute(
        &self,
        aggregate_id: &str,
        expected_version: Option<u64>,
        metadata: &CommandMetadata,
        decider: &impl Decider<A>,
    ) -> Result<Outcome<A>, CommandError<A::Error>> {
        let metadata = serde_json::to_value(metadata.to_map()).map_err(CommandError::internal)?;
        let mut last_seen = 0;
        for attempt in 1..=MAX_ATTEMPTS {
            let context = if attempt == 1 && decider.is_new() {
                EventStoreAggregateContext {
                    aggregate_id: aggregate_id.to_owned(),
                    aggregate: A::default(),
                    current_sequence: 0,
                    current_snapshot: None,
                }
            } else {
                self.store
                    .load_aggregate(aggregate_id)
                    .await
                    .map_err(CommandError::from_load)?
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
            let events = decider.decide(&context.aggregate).await?;
            let mut decided = context.aggregate.clone();
            if events.is_empty() {
                return Ok(Outcome {
                    version: current,
                    events: 0,
                    aggregate: decided,
                    appended: None,
                });
            }
            let count = events.len();
            for event in events.iter().cloned() {
                decided.apply(event);
            }
            let commit = commit::of(&context, events, &decided, &metadata, self.snapshot_every)
                .map_err(CommandError::internal)?;
            match self.appender.append(commit).await {
                Ok(appended) => {
                    return Ok(Outcome {
                        version: current + count as u64,
                        events: count,
                        aggregate: decided,
                        appended: Some(appended),
                    });
                }
                Err(AppendError::Conflict) => {
                    decider.lost_race(&context.aggregate).await?;
                    if expected_version.is_some() {
                        let actual = self.current_version(aggregate_id).await?;
                        return Err(CommandError::Conflict {
                            expected: expected_version,
                            actual,
                        });
                    }
                    tracing::debug!(attempt, "command lost a race; retrying on fresh state");
                }
                Err(AppendError::Unavailable(err)) => return Err(CommandError::Unavailable(err)),
                Err(AppendError::Internal(err)) => return Err(CommandError::Internal(err)),
            }
        }
        Err(CommandError::Conflict {
            expected: None,
            actual: last_seen,
        })
    }

    async fn current_version(&self, aggregate_id: &str) -> Result<u64, CommandError<A::Error>> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .fetch_one(&self.pool)
        .await
        .map_err(CommandError::from_sqlx)?;
        Ok(version.unwrap_or(0).max(0) as u64)
    }
}
