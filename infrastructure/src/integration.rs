//! Recording integration events: each one a new `IntegrationEvent`
//! aggregate written through postgres-es, then picked up by the feed like
//! every other event (relayed to NATS on its own subject, logged in
//! `event_log`).

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore};
use domain::{IntegrationCommand, IntegrationError, IntegrationEvent};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::is_unavailable_boxed;
use crate::feed::AppendSignal;
use crate::metadata::CommandMetadata;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What the store made of a published integration event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The stored event's id (`events.event_id`; the `Nats-Msg-Id`).
    pub event_id: Uuid,
    /// The aggregate it was recorded as (a new one per event).
    pub aggregate_id: Uuid,
    /// When the row was written.
    pub recorded_at: DateTime<Utc>,
}

/// Why an integration event was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The domain refused it; nothing was stored.
    #[error(transparent)]
    Rejected(IntegrationError),
    /// The database cannot be reached; retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A bug or corrupt data.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl PublishError {
    fn from_boxed(err: BoxError) -> Self {
        if is_unavailable_boxed(err.as_ref()) {
            Self::Unavailable(err)
        } else {
            Self::Internal(err)
        }
    }

    fn from_aggregate(err: AggregateError<IntegrationError>) -> Self {
        match err {
            AggregateError::UserError(err) => Self::Rejected(err),
            AggregateError::DatabaseConnectionError(err) => Self::Unavailable(err),
            AggregateError::AggregateConflict => {
                Self::Internal("a new integration event's aggregate id was already taken".into())
            }
            AggregateError::DeserializationError(err) => Self::Internal(err),
            AggregateError::UnexpectedError(err) => Self::from_boxed(err),
        }
    }
}

const READ_BACK: &str = "SELECT event_id, recorded_at FROM events \
     WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = 1";

/// Records integration events in the store.
pub struct IntegrationPublisher {
    store: PersistedEventStore<PostgresEventRepository, IntegrationEvent>,
    pool: PgPool,
    appended: AppendSignal,
}

impl IntegrationPublisher {
    /// A publisher writing to `pool` and waking feed runners through
    /// `appended` after each commit.
    pub fn new(pool: PgPool, appended: AppendSignal) -> Self {
        let repo = PostgresEventRepository::new(pool.clone());
        Self {
            store: PersistedEventStore::new_event_store(repo),
            pool,
            appended,
        }
    }

    /// Decides `command` on a new `IntegrationEvent` aggregate and commits
    /// its event with `metadata`.
    ///
    /// # Errors
    /// See [`PublishError`].
    #[tracing::instrument(skip_all, fields(correlation_id = %metadata.correlation_id))]
    pub async fn publish(
        &self,
        command: IntegrationCommand,
        metadata: &CommandMetadata,
    ) -> Result<Recorded, PublishError> {
        let aggregate_id = Uuid::new_v4();
        // A new random id has no events: no need to load it.
        let context = EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_string(),
            aggregate: IntegrationEvent::default(),
            current_sequence: 0,
            current_snapshot: None,
        };
        let sink = EventSink::default();
        context
            .aggregate
            .clone()
            .handle(command, &(), &sink)
            .await
            .map_err(PublishError::Rejected)?;
        let events = sink.collect().await;
        self.store
            .commit(events, context, metadata.to_map())
            .await
            .map_err(PublishError::from_aggregate)?;
        self.appended.notify();
        let (event_id, recorded_at): (Uuid, DateTime<Utc>) = sqlx::query_as(READ_BACK)
            .bind(IntegrationEvent::TYPE)
            .bind(aggregate_id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(|err| PublishError::from_boxed(Box::new(err)))?;
        tracing::debug!(%event_id, %aggregate_id, "integration event recorded");
        Ok(Recorded {
            event_id,
            aggregate_id,
            recorded_at,
        })
    }
}
