//! Recording integration events: each one a new `IntegrationEvent`
//! aggregate, decided and committed by the same executor as project
//! commands, then picked up by the feed like every other event (relayed to
//! NATS on its own subject, logged in `event_log`).

use chrono::{DateTime, Utc};
use domain::{IntegrationCommand, IntegrationError, IntegrationEvent, IntegrationFact};
use sqlx::PgPool;
use uuid::Uuid;

use crate::append::Appender;
use crate::execute::{CommandError, Decider, Executor};
use crate::feed::FeedPosition;
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
    /// Where it is in the feed's order.
    pub position: FeedPosition,
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

impl From<CommandError<IntegrationError>> for PublishError {
    fn from(err: CommandError<IntegrationError>) -> Self {
        match err {
            CommandError::Rejected(err) => Self::Rejected(err),
            // No version is expected and a lost race is not retried (see
            // `Publish::lost_race`), so this cannot happen.
            conflict @ CommandError::Conflict { .. } => Self::Internal(Box::new(conflict)),
            CommandError::Unavailable(err) => Self::Unavailable(err),
            CommandError::Internal(err) => Self::Internal(err),
        }
    }
}

/// Records integration events in the store through the shared executor
/// (`crate::execute`), whose commits go through the [`Appender`]: the events
/// published at the same time share a transaction (group commit).
pub struct IntegrationPublisher {
    executor: Executor<IntegrationEvent>,
}

impl IntegrationPublisher {
    /// A publisher committing through `appender` (and reading from `pool`,
    /// which a new aggregate never needs).
    pub fn new(pool: PgPool, appender: Appender) -> Self {
        Self {
            executor: Executor::new(pool, appender, None, Vec::new()),
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
        let outcome = self
            .executor
            .execute(&aggregate_id.to_string(), None, metadata, &Publish(command))
            .await?;
        let appended = outcome.appended.ok_or_else(|| {
            PublishError::Internal("the integration event's command recorded no event".into())
        })?;
        let event_id = *appended.event_ids.first().ok_or_else(|| {
            PublishError::Internal("the integration event's command recorded no event".into())
        })?;
        tracing::debug!(%event_id, %aggregate_id, "integration event recorded");
        Ok(Recorded {
            event_id,
            aggregate_id,
            recorded_at: appended.recorded_at,
            position: appended.last,
        })
    }
}

/// Publishing one integration event, as the [`Executor`] decides it.
struct Publish(IntegrationCommand);

impl Decider<IntegrationEvent> for Publish {
    /// Each event is a new aggregate with a new random id: nothing to load.
    fn is_new(&self) -> bool {
        true
    }

    async fn decide(
        &self,
        event: &IntegrationEvent,
    ) -> Result<Vec<IntegrationFact>, CommandError<IntegrationError>> {
        event
            .decide(self.0.clone())
            .map(|fact| vec![fact])
            .map_err(CommandError::Rejected)
    }

    /// Only another event with the same random id could have taken its
    /// sequence number: not retried, as no retry could make it new again.
    async fn lost_race(
        &self,
        _event: &IntegrationEvent,
    ) -> Result<(), CommandError<IntegrationError>> {
        Err(CommandError::internal(
            "a new integration event's aggregate id was already taken",
        ))
    }
}
