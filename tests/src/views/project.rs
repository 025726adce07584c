//! A project as GraphQL shows it.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `Project`, with the fields of `ops`' fragment `P` (every field but
/// `history` and `deleted`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Project {
    /// The project id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The URL-safe name derived from the name.
    pub slug: String,
    /// The project's directory.
    pub path: String,
    /// The lifecycle state.
    pub status: ProjectStatus,
    /// Events recorded for the project.
    pub version: i64,
    /// The ports it owns.
    pub ports: Ports,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it last started.
    #[serde(deserialize_with = "super::nullable")]
    pub last_started_at: Option<DateTime<Utc>>,
    /// When it last stopped.
    #[serde(deserialize_with = "super::nullable")]
    pub last_stopped_at: Option<DateTime<Utc>>,
    /// Why the last start or stop failed.
    #[serde(deserialize_with = "super::nullable")]
    pub last_error: Option<String>,
}

/// `ProjectStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProjectStatus {
    /// `STOPPED`.
    Stopped,
    /// `STARTING`.
    Starting,
    /// `RUNNING`.
    Running,
    /// `STOPPING`.
    Stopping,
    /// `ERROR`.
    Error,
    /// `DELETED`.
    Deleted,
}

/// `ports { backend frontend postgres redis }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// The backend port.
    pub backend: u16,
    /// The frontend port.
    pub frontend: u16,
    /// The PostgreSQL port.
    pub postgres: u16,
    /// The Redis port.
    pub redis: u16,
}

/// `ProjectPayload` as the `ops` mutations select it:
/// `correlationId project { ...P }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectPayload {
    /// The request's correlation id.
    pub correlation_id: String,
    /// The project after the mutation.
    pub project: Project,
}
