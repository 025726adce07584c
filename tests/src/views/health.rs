//! `GET /health` with the details a caller with write access gets.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `GET /health`'s full report. It reads the fields named here and ignores
/// others: the report grows with the hub, and no test compares it whole.
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    /// The hub's state in one word.
    pub status: HealthStatus,
    /// The database connection.
    pub database: DatabaseHealth,
    /// The NATS connection.
    pub nats: NatsHealth,
    /// Events the relay has not published yet (`None` while the database
    /// does not answer).
    #[serde(deserialize_with = "super::nullable")]
    pub relay_lag: Option<i64>,
    /// What the event feed waits for.
    pub feed: FeedHealth,
    /// Each feed consumer, by name.
    pub consumers: BTreeMap<String, ConsumerHealth>,
}

impl Health {
    /// Consumer `name`.
    ///
    /// # Panics
    /// When the report has no such consumer.
    pub fn consumer(&self, name: &str) -> &ConsumerHealth {
        self.consumers
            .get(name)
            .unwrap_or_else(|| panic!("no consumer {name} in {self:?}"))
    }
}

/// `healthy`, `degraded` or `unhealthy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Everything works.
    Healthy,
    /// Commands work; something needs attention.
    Degraded,
    /// The database does not answer.
    Unhealthy,
}

/// `database`.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseHealth {
    /// Whether it answers.
    pub connected: bool,
}

/// `nats`.
#[derive(Debug, Clone, Deserialize)]
pub struct NatsHealth {
    /// Whether the client is connected.
    pub connected: bool,
    /// The configured URL(s), without credentials.
    pub url: String,
    /// The name of the server it is connected to.
    #[serde(deserialize_with = "super::nullable")]
    pub server: Option<String>,
}

/// `feed`: the open event-writing transactions it waits for.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedHealth {
    /// How long the oldest has been open.
    pub wait_seconds: f64,
    /// Those open longer than the stall warning, oldest first.
    pub held_back_by: Vec<FeedHolder>,
}

/// An open transaction that appends events.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedHolder {
    /// Its backend's process id.
    pub pid: i32,
    /// The database it is connected to.
    #[serde(deserialize_with = "super::nullable")]
    pub database: Option<String>,
    /// What its client calls itself.
    #[serde(deserialize_with = "super::nullable")]
    pub application_name: Option<String>,
    /// `active`, `idle in transaction`, ...
    #[serde(deserialize_with = "super::nullable")]
    pub state: Option<String>,
    /// How long it has been open.
    pub open_seconds: f64,
}

/// One feed consumer.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerHealth {
    /// Whether this process runs it.
    pub active_here: bool,
    /// Events handled in total.
    pub handled: i64,
    /// Committed events not handled yet (`None` while the database does
    /// not answer).
    #[serde(deserialize_with = "super::nullable")]
    pub lag: Option<i64>,
    /// Events parked (`None` while the database does not answer).
    #[serde(deserialize_with = "super::nullable")]
    pub parked: Option<i64>,
    /// The first five parked events, when there are any.
    #[serde(deserialize_with = "super::nullable")]
    pub first_parked: Option<Vec<ParkedReport>>,
    /// The event it is halted on, as the report gives it.
    #[serde(deserialize_with = "super::nullable")]
    pub halted: Option<serde_json::Value>,
    /// Its last failure.
    #[serde(deserialize_with = "super::nullable")]
    pub last_error: Option<String>,
    /// Failures in a row.
    pub consecutive_failures: u32,
}

/// A parked event in `first_parked`.
#[derive(Debug, Clone, Deserialize)]
pub struct ParkedReport {
    /// The event's id.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// What the consumer said.
    #[serde(deserialize_with = "super::nullable")]
    pub error: Option<String>,
    /// The parked event of the same aggregate it waits behind.
    #[serde(deserialize_with = "super::nullable")]
    pub held_behind: Option<String>,
}
