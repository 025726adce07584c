//! The one public view of an event: the original event-system design's
//! envelope plus the store's coordinates. It is the JSON published to NATS
//! and streamed to clients (SSE, WebSocket), a row of the `event_log` read
//! model, and what the GraphQL `Event` and the REST body render.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::feed::{FeedPosition, StoredEvent};
use crate::metadata::{CommandMetadata, Origin};

/// Header carrying the event's feed position (`<transaction_id>:<position>`),
/// used by the relay to reconcile with the stream after a crash.
pub const FEED_POSITION_HEADER: &str = "Hub-Feed-Position";
/// Header carrying the correlation id.
pub const CORRELATION_HEADER: &str = "Hub-Correlation-Id";
/// Header carrying the causation id.
pub const CAUSATION_HEADER: &str = "Hub-Causation-Id";
/// Header carrying the event type.
pub const EVENT_TYPE_HEADER: &str = "Hub-Event-Type";

/// One event as published, and as `event_log` holds it (its columns have
/// these names; `origin` is JSON there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Envelope {
    /// Event id (also the `Nats-Msg-Id`).
    pub id: Uuid,
    /// `hub.<hub_id>.<domain>.<action>`.
    pub subject: String,
    /// Who and where.
    #[sqlx(json)]
    pub origin: Origin,
    /// Shared by everything one request caused.
    pub correlation_id: Option<String>,
    /// The message that caused this event.
    pub causation_id: Option<String>,
    /// The event's fields.
    pub payload: serde_json::Value,
    /// When it was recorded.
    pub timestamp: DateTime<Utc>,
    /// e.g. `Project`.
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// 1-based sequence within the aggregate.
    pub sequence: i64,
    /// e.g. `ProjectCreated`.
    pub event_type: String,
    /// e.g. `1.0`.
    pub event_version: String,
    /// Global insert position in the store.
    pub position: i64,
    /// The writing transaction; with `position`, the event's feed order.
    pub transaction_id: i64,
}

impl Envelope {
    /// The envelope of a stored event, for the hub `hub_id`.
    /// An event stored in an older shape is published in today's (see
    /// [`StoredEvent::in_current_shape`]).
    pub fn from_stored(event: &StoredEvent, hub_id: &str) -> Self {
        let event = event.in_current_shape();
        let mut origin = event.metadata.origin.clone();
        if origin.hub_id.is_empty() {
            origin.hub_id = hub_id.to_owned();
        }
        Self {
            id: event.event_id,
            subject: event.subject(hub_id),
            origin,
            correlation_id: event.metadata.correlation(),
            causation_id: event.metadata.causation(),
            payload: event.body().clone(),
            timestamp: event.recorded_at,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            position: event.position,
            transaction_id: event.transaction_id,
        }
    }

    /// The stored event this envelope was made from, in today's shape: the
    /// payload under its event type's tag, as the store keeps it. A reader
    /// that folds events can then fold a live one without reading it from
    /// the store again. `None` for an integration event, whose stored
    /// payload holds its subject too.
    pub fn to_stored(&self) -> Option<StoredEvent> {
        if self.aggregate_type == <domain::IntegrationEvent as cqrs_es::Aggregate>::TYPE {
            return None;
        }
        let mut payload = serde_json::Map::new();
        payload.insert(self.event_type.clone(), self.payload.clone());
        Some(StoredEvent {
            event_id: self.id,
            position: self.position,
            transaction_id: self.transaction_id,
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            event_type: self.event_type.clone(),
            event_version: self.event_version.clone(),
            payload: serde_json::Value::Object(payload),
            metadata: CommandMetadata {
                correlation_id: self.correlation_id.clone().unwrap_or_default(),
                causation_id: self.causation_id.clone().unwrap_or_default(),
                origin: self.origin.clone(),
            },
            recorded_at: self.timestamp,
            unreadable: None,
        })
    }

    /// Where the event sits in the feed.
    pub fn feed_position(&self) -> FeedPosition {
        FeedPosition {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }
}

/// `<transaction_id>:<position>`.
pub fn format_feed_position(at: FeedPosition) -> String {
    format!("{}:{}", at.transaction_id, at.position)
}

/// Reads [`format_feed_position`]'s output.
pub fn parse_feed_position(value: &str) -> Option<FeedPosition> {
    let (tx, pos) = value.split_once(':')?;
    Some(FeedPosition {
        transaction_id: tx.parse().ok()?,
        position: pos.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use cqrs_es::Aggregate as _;
    use domain::Project;
    use serde_json::json;

    use super::*;

    fn stored(aggregate_type: &str, event_type: &str, payload: serde_json::Value) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::new_v4(),
            position: 42,
            transaction_id: 7,
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: Uuid::new_v4().to_string(),
            sequence: 3,
            event_type: event_type.to_owned(),
            event_version: domain::project::upcast::CURRENT_VERSION.to_owned(),
            payload,
            metadata: CommandMetadata {
                correlation_id: "c-1".to_owned(),
                causation_id: "k-1".to_owned(),
                origin: Origin {
                    hub_id: "h".to_owned(),
                    service: "hub-api".to_owned(),
                    user: "anonymous".to_owned(),
                },
            },
            recorded_at: Utc::now(),
            unreadable: None,
        }
    }

    #[test]
    fn a_project_event_is_the_stored_event_again_after_its_envelope() {
        let event = stored(
            Project::TYPE,
            "ProjectRenamed",
            json!({"ProjectRenamed": {"name": "New", "slug": "new"}}),
        );
        let envelope = Envelope::from_stored(&event, "h");
        assert_eq!(envelope.to_stored(), Some(event));
    }

    #[test]
    fn an_integration_event_is_not_rebuilt_from_its_envelope() {
        let event = stored(
            "IntegrationEvent",
            "IntegrationEventPublished",
            json!({"IntegrationEventPublished": {"subject": "hub.h.audit.done", "payload": {}}}),
        );
        assert_eq!(Envelope::from_stored(&event, "h").to_stored(), None);
    }
}
