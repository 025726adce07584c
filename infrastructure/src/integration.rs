//! Recording integration events: each one a new `IntegrationEvent`
//! aggregate written through postgres-es, then picked up by the feed like
//! every other event (relayed to NATS on its own subject, logged in
//! `event_log`).

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::SerializedEvent;
use cqrs_es::{Aggregate, DomainEvent};
use domain::{IntegrationCommand, IntegrationError, IntegrationEvent};
use uuid::Uuid;

use crate::append::{AppendError, Appender, Commit};
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

impl PublishError {
    fn from_append(err: AppendError) -> Self {
        match err {
            AppendError::Unavailable(err) => Self::Unavailable(err),
            AppendError::Conflict => {
                Self::Internal("a new integration event's aggregate id was already taken".into())
            }
            AppendError::Internal(err) => Self::Internal(err),
        }
    }
}

/// Records integration events in the store, through the [`Appender`]: the
/// events published at the same time share a transaction (group commit).
pub struct IntegrationPublisher {
    appender: Appender,
}

impl IntegrationPublisher {
    /// A publisher committing through `appender`.
    pub fn new(appender: Appender) -> Self {
        Self { appender }
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
        // A new random id has no events: nothing to load.
        let aggregate_id = Uuid::new_v4();
        let sink = EventSink::default();
        IntegrationEvent::default()
            .handle(command, &(), &sink)
            .await
            .map_err(PublishError::Rejected)?;
        let metadata = serde_json::to_value(metadata.to_map())
            .map_err(|err| PublishError::Internal(Box::new(err)))?;
        let events = sink
            .collect()
            .await
            .into_iter()
            .zip(1..)
            .map(|(event, sequence)| {
                let payload = serde_json::to_value(&event)
                    .map_err(|err| PublishError::Internal(Box::new(err)))?;
                Ok(SerializedEvent::new(
                    aggregate_id.to_string(),
                    sequence,
                    IntegrationEvent::TYPE.to_owned(),
                    event.event_type(),
                    event.event_version(),
                    payload,
                    metadata.clone(),
                ))
            })
            .collect::<Result<Vec<_>, PublishError>>()?;
        let appended = self
            .appender
            .append(Commit {
                events,
                snapshot: None,
            })
            .await
            .map_err(PublishError::from_append)?;
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
