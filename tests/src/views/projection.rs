//! A read model's status and the admin answers on its parked events, as
//! GraphQL shows them.

use serde::Deserialize;

/// `Projection` as `projections` is asked for it: `name handled lagEvents
/// lagSeconds state rebuildDone rebuildTotal version codeVersion outdated
/// parked lastRebuild { state done total eventsPerSecond error }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Projection {
    /// `projects` or `event_log`.
    pub name: String,
    /// Events handled.
    pub handled: i64,
    /// Committed events not handled yet.
    pub lag_events: i64,
    /// How long the oldest of those has waited.
    pub lag_seconds: f64,
    /// Live, or rebuilding beside the live table.
    pub state: ProjectionState,
    /// While rebuilding: events in the new table so far.
    #[serde(deserialize_with = "super::nullable")]
    pub rebuild_done: Option<i64>,
    /// While rebuilding: events to replay in all.
    #[serde(deserialize_with = "super::nullable")]
    pub rebuild_total: Option<i64>,
    /// The projection version that built the live table.
    pub version: i64,
    /// The projection version of this build.
    pub code_version: i64,
    /// Whether an older version built the live table.
    pub outdated: bool,
    /// Events parked.
    pub parked: i64,
    /// The last rebuild this hub process started.
    #[serde(deserialize_with = "super::nullable")]
    pub last_rebuild: Option<LastRebuild>,
}

impl Projection {
    /// The state of the last rebuild, if one was started.
    pub fn rebuild_state(&self) -> Option<RebuildState> {
        self.last_rebuild.as_ref().map(|rebuild| rebuild.state)
    }
}

/// `ProjectionStateKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProjectionState {
    /// `LIVE`.
    Live,
    /// `REBUILDING`.
    Rebuilding,
}

/// `lastRebuild { state done total eventsPerSecond error }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LastRebuild {
    /// Running, switched or failed.
    pub state: RebuildState,
    /// Events replayed so far.
    #[serde(deserialize_with = "super::nullable")]
    pub done: Option<i64>,
    /// Events to replay in all.
    #[serde(deserialize_with = "super::nullable")]
    pub total: Option<i64>,
    /// Events per second of this run.
    #[serde(deserialize_with = "super::nullable")]
    pub events_per_second: Option<f64>,
    /// Why it failed.
    #[serde(deserialize_with = "super::nullable")]
    pub error: Option<String>,
}

/// `RebuildJobState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RebuildState {
    /// `RUNNING`.
    Running,
    /// `SWITCHED`.
    Switched,
    /// `FAILED`.
    Failed,
}

/// `ParkedEvent` as selected by `eventId aggregateId sequence eventType
/// failed error heldBehind attempts`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParkedEvent {
    /// The event's id.
    pub event_id: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// Its sequence within the aggregate.
    pub sequence: i64,
    /// e.g. `ProjectCreated`.
    pub event_type: String,
    /// Whether the consumer failed on it (otherwise it waits behind another).
    pub failed: bool,
    /// What the consumer said on the last attempt.
    #[serde(deserialize_with = "super::nullable")]
    pub error: Option<String>,
    /// The parked event of the same aggregate it waits behind.
    #[serde(deserialize_with = "super::nullable")]
    pub held_behind: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
}

/// `retryParkedEvents`' answer: `name replayed { .. } stillParked { .. }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryResult {
    /// The read model.
    pub name: String,
    /// Events handled this time, in order.
    pub replayed: Vec<ParkedEvent>,
    /// Events still parked.
    pub still_parked: Vec<ParkedEvent>,
}

/// `skipParkedEvent`'s answer: `name heldBehind skipped { .. }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkipResult {
    /// The consumer.
    pub name: String,
    /// Events of its aggregate still parked behind it.
    pub held_behind: i64,
    /// The event given up on.
    pub skipped: ParkedEvent,
}
