//! [`EventRepository`]: cqrs-es' `PersistedEventRepository` with
//! postgres-es reading (events, snapshots, their schema) and the
//! [`Appender`] writing.
//!
//! postgres-es opens one transaction per commit inside the crate and has no
//! way to share it, so it cannot group commits; everything else it does is
//! kept. The appender writes exactly the rows postgres-es would, so either
//! reads what the other wrote.

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::PgPool;

use super::{AppendError, Appender, Commit, SnapshotUpdate};

/// The event store's repository for aggregates whose commits go through an
/// [`Appender`].
pub struct EventRepository {
    reads: PostgresEventRepository,
    appender: Appender,
}

impl EventRepository {
    /// Reads from `pool`, writes through `appender`.
    pub fn new(pool: PgPool, appender: Appender) -> Self {
        Self {
            reads: PostgresEventRepository::new(pool),
            appender,
        }
    }
}

impl PersistedEventRepository for EventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reads.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reads
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.reads.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if events.is_empty() {
            return Ok(());
        }
        // As postgres-es does, the snapshot is recorded as of the commit's
        // last event.
        let last_sequence = events.last().map_or(0, |event| event.sequence);
        let snapshot = snapshot_update.map(|(_, payload, current_snapshot)| SnapshotUpdate {
            payload,
            last_sequence,
            current_snapshot,
        });
        let commit = Commit {
            events: events.to_vec(),
            snapshot,
        };
        match self.appender.append(commit).await {
            Ok(_) => Ok(()),
            Err(AppendError::Conflict) => Err(PersistenceError::OptimisticLockError),
            Err(AppendError::Unavailable(err)) => Err(PersistenceError::ConnectionError(err)),
            Err(AppendError::Internal(err)) => Err(PersistenceError::UnknownError(err)),
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.reads.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.reads.stream_all_events::<A>().await
    }
}
