//! An event as GraphQL, a subscription and the REST API show it.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// `Event` with every field but `cursor` (the node of `ops::EVENTS`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// The event id.
    pub id: String,
    /// `hub.<hub_id>.<domain>.<action>`.
    pub subject: String,
    /// e.g. `ProjectCreated`.
    pub event_type: String,
    /// e.g. `1.0`.
    pub event_version: String,
    /// e.g. `Project`.
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// Its place in the aggregate's history, from 1.
    pub sequence: i64,
    /// Its insert position in the store.
    pub position: i64,
    /// The request it belongs to.
    #[serde(deserialize_with = "super::nullable")]
    pub correlation_id: Option<String>,
    /// The message that caused it.
    #[serde(deserialize_with = "super::nullable")]
    pub causation_id: Option<String>,
    /// Who recorded it, where.
    pub origin: Origin,
    /// The event's fields.
    pub payload: Value,
    /// When it was recorded.
    pub timestamp: DateTime<Utc>,
}

/// `origin { hubId service user }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Origin {
    /// The hub that recorded it.
    pub hub_id: String,
    /// The service inside the hub.
    pub service: String,
    /// Who asked for it.
    pub user: String,
}

/// An event of the `events` subscription as `ws::EVENTS` selects it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LiveEvent {
    /// The event id.
    pub id: String,
    /// Where to continue after it.
    pub cursor: String,
    /// Its insert position in the store.
    pub position: i64,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// Its place in the aggregate's history, from 1.
    pub sequence: i64,
    /// e.g. `ProjectCreated`.
    pub event_type: String,
}

/// One event as the REST API (and `hub events`) shows it: an item of
/// `GET /api/events`, or `GET /api/events/{id}`; `P` is the payload's
/// shape, for a test that knows what it published.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestEvent<P = Value> {
    /// The event id.
    pub id: String,
    /// The NATS subject it is published on.
    pub subject: String,
    /// Who recorded it, where.
    pub origin: RestOrigin,
    /// The request it belongs to.
    #[serde(deserialize_with = "super::nullable")]
    pub correlation_id: Option<String>,
    /// The message that caused it.
    #[serde(deserialize_with = "super::nullable")]
    pub causation_id: Option<String>,
    /// The event's data.
    pub payload: P,
    /// When it was recorded.
    pub timestamp: DateTime<Utc>,
    /// e.g. `IntegrationEventPublished`.
    pub event_type: String,
    /// e.g. `IntegrationEvent`.
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// Its place in the aggregate's history, from 1.
    pub sequence: i64,
}

/// `origin` of a REST event: `{hub_id, service, user}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestOrigin {
    /// The hub that recorded it.
    pub hub_id: String,
    /// The service inside the hub.
    pub service: String,
    /// Who asked for it.
    pub user: String,
}
