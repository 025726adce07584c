//! GraphQL object types, built from the read models' rows.

use async_graphql::{ComplexObject, Context, Enum, InputObject, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use infrastructure::nats::Envelope;
use projections::cursor::encode_event_cursor;
use projections::{EventRow, ProjectRow};

use super::error::ApiError;
use super::ApiState;

// The domain's `ProjectStatus` as GraphQL shows it (the doc comment is the
// schema's description): `remote` derives the conversions both ways, each
// an exhaustive match, so a status added to the domain does not compile
// until it is listed here.
/// Lifecycle state of a project.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::ProjectStatus")]
pub enum ProjectStatus {
    /// Not running.
    Stopped,
    /// A start was requested and is in progress.
    Starting,
    /// Running.
    Running,
    /// A stop was requested and is in progress.
    Stopping,
    /// The last start or stop failed; see `lastError`.
    Error,
    /// Deleted: readable, never changeable.
    Deleted,
}

/// The four ports a project owns.
#[derive(SimpleObject, Clone, Copy, Debug)]
pub struct Ports {
    /// Backend port.
    pub backend: i32,
    /// Frontend port.
    pub frontend: i32,
    /// PostgreSQL port.
    pub postgres: i32,
    /// Redis port.
    pub redis: i32,
}

/// A project as the `projects` read model has it.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Project {
    /// Project id.
    pub id: ID,
    /// Display name.
    pub name: String,
    /// Unique URL-safe name derived from the name.
    pub slug: String,
    /// Absolute path of the project's directory.
    pub path: String,
    /// Lifecycle state.
    pub status: ProjectStatus,
    /// Ports the project owns.
    pub ports: Ports,
    /// Number of events recorded for the project; pass it as
    /// `expectedVersion` to guard against concurrent changes.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it last started.
    pub last_started_at: Option<DateTime<Utc>>,
    /// When it last stopped.
    pub last_stopped_at: Option<DateTime<Utc>>,
    /// Why the last start or stop failed, if it did.
    pub last_error: Option<String>,
}

#[ComplexObject]
impl Project {
    /// Whether the project is deleted (status `DELETED`): a subscriber's
    /// last message about a project says so; evict the project then.
    async fn deleted(&self) -> bool {
        self.status == ProjectStatus::Deleted
    }

    /// The project's events, oldest first.
    #[graphql(complexity = "page_complexity(Some(first), child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100, desc = "At most this many events (0-1000).")] first: i32,
    ) -> Result<Vec<Event>> {
        let first = page_size(Some(first))?;
        let state = ctx.data::<ApiState>()?;
        let rows = state
            .read
            .history(&self.id, first)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Event::from).collect())
    }
}

impl From<ProjectRow> for Project {
    fn from(row: ProjectRow) -> Self {
        Self {
            id: ID(row.id.to_string()),
            name: row.name,
            slug: row.slug,
            path: row.path,
            status: row.status.into(),
            ports: Ports {
                backend: row.backend_port,
                frontend: row.frontend_port,
                postgres: row.postgres_port,
                redis: row.redis_port,
            },
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            last_started_at: row.last_started_at,
            last_stopped_at: row.last_stopped_at,
            last_error: row.last_error,
        }
    }
}

impl Project {
    /// The project as a command left it, for an answer that cannot wait for
    /// the read model: what the command decides (name, slug, path, ports,
    /// status, version) from `project`, what it does not know (creation
    /// time, last start and stop, last error) from the read model's older
    /// row `previous` when there is one, and `now` as the time of the
    /// change. `None` for a project that does not exist.
    pub fn as_commanded(
        project: &domain::Project,
        previous: Option<ProjectRow>,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let id = project.id()?;
        let ports = project.ports()?;
        let row =
            |field: fn(&ProjectRow) -> Option<DateTime<Utc>>| previous.as_ref().and_then(field);
        Some(Self {
            id: ID(id.to_string()),
            name: project.name()?.as_str().to_owned(),
            slug: project.slug()?.as_str().to_owned(),
            path: project.path()?.as_str().to_owned(),
            status: project.status()?.into(),
            ports: Ports {
                backend: i32::from(ports.backend),
                frontend: i32::from(ports.frontend),
                postgres: i32::from(ports.postgres),
                redis: i32::from(ports.redis),
            },
            version: i64::try_from(project.version()).unwrap_or(i64::MAX),
            created_at: row(|r| Some(r.created_at)).unwrap_or(now),
            updated_at: now,
            last_started_at: row(|r| r.last_started_at),
            last_stopped_at: row(|r| r.last_stopped_at),
            last_error: previous.and_then(|r| r.last_error),
        })
    }
}

/// Where an event came from.
#[derive(SimpleObject, Clone, Debug)]
pub struct Origin {
    /// The hub that recorded it.
    pub hub_id: String,
    /// The service inside the hub.
    pub service: String,
    /// Who asked for it.
    pub user: String,
}

/// A recorded domain event.
#[derive(SimpleObject, Clone, Debug)]
pub struct Event {
    /// Event id (also the NATS message id).
    pub id: ID,
    /// Opaque cursor of the event in commit order: pass it as `after` to
    /// `events` (query or subscription) to continue after this event.
    pub cursor: String,
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
    /// 1-based sequence within the aggregate.
    pub sequence: i64,
    /// Global insert position in the store.
    pub position: i64,
    /// Shared by everything one request caused.
    pub correlation_id: Option<String>,
    /// The message that caused this event.
    pub causation_id: Option<String>,
    /// Who and where.
    pub origin: Origin,
    /// The event's fields.
    pub payload: async_graphql::Json<serde_json::Value>,
    /// When it was recorded.
    pub timestamp: DateTime<Utc>,
}

impl From<EventRow> for Event {
    fn from(row: EventRow) -> Self {
        let origin = |key: &str| {
            row.origin
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            id: ID(row.id.to_string()),
            cursor: encode_event_cursor(row.feed_position()),
            subject: row.subject.clone(),
            event_type: row.event_type.clone(),
            event_version: row.event_version.clone(),
            aggregate_type: row.aggregate_type.clone(),
            aggregate_id: row.aggregate_id.clone(),
            sequence: row.sequence,
            position: row.position,
            correlation_id: row.correlation_id.clone(),
            causation_id: row.causation_id.clone(),
            origin: Origin {
                hub_id: origin("hub_id"),
                service: origin("service"),
                user: origin("user"),
            },
            payload: async_graphql::Json(row.payload.clone()),
            timestamp: row.timestamp,
        }
    }
}

impl From<&Envelope> for Event {
    fn from(e: &Envelope) -> Self {
        Self {
            id: ID(e.id.to_string()),
            cursor: encode_event_cursor(e.feed_position()),
            subject: e.subject.clone(),
            event_type: e.event_type.clone(),
            event_version: e.event_version.clone(),
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            position: e.position,
            correlation_id: e.correlation_id.clone(),
            causation_id: e.causation_id.clone(),
            origin: Origin {
                hub_id: e.origin.hub_id.clone(),
                service: e.origin.service.clone(),
                user: e.origin.user.clone(),
            },
            payload: async_graphql::Json(e.payload.clone()),
            timestamp: e.timestamp,
        }
    }
}

/// Counts of projects per status.
#[derive(SimpleObject, Clone, Copy, Debug)]
pub struct ProjectStats {
    /// Projects not deleted.
    pub total: i64,
    /// Running.
    pub running: i64,
    /// Stopped.
    pub stopped: i64,
    /// Starting.
    pub starting: i64,
    /// Stopping.
    pub stopping: i64,
    /// In error.
    pub errors: i64,
    /// Deleted.
    pub deleted: i64,
}

impl From<projections::ProjectStats> for ProjectStats {
    fn from(s: projections::ProjectStats) -> Self {
        Self {
            total: s.total,
            running: s.running,
            stopped: s.stopped,
            starting: s.starting,
            stopping: s.stopping,
            errors: s.errors,
            deleted: s.deleted,
        }
    }
}

/// Narrows an event query; every field given must match.
#[derive(InputObject, Clone, Debug, Default)]
pub struct EventFilter {
    /// NATS subject pattern: `*` matches one token, `>` the rest
    /// (e.g. `hub.local-hub.project.>`); or, with `%`, a SQL `LIKE`
    /// pattern in which only `%` is a wildcard (`hub.local-hub.audit.%`).
    pub subject: Option<String>,
    /// Events of one aggregate (a project id).
    pub aggregate_id: Option<String>,
    /// Events of one request.
    pub correlation_id: Option<String>,
    /// Only these event types (e.g. `ProjectStarted`).
    pub event_types: Option<Vec<String>>,
    /// Recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Largest page a client may ask for.
pub const MAX_PAGE: i32 = 1000;

/// The complexity of a page: its selection's once per item it may hold
/// (`first`, or the default page size), so that asking for big pages costs
/// what it returns.
pub fn page_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    let items = first.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    items.saturating_mul(child_complexity).saturating_add(1)
}

/// Page size when a client does not say.
pub const DEFAULT_PAGE: i32 = 50;

/// Validates a requested page size (default 50).
///
/// # Errors
/// INVALID_INPUT outside 0..=1000.
pub fn page_size(first: Option<i32>) -> Result<u32, ApiError> {
    let first = first.unwrap_or(DEFAULT_PAGE);
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(ApiError::invalid_input(format!(
            "first must be between 0 and {MAX_PAGE}, got {first}"
        )));
    }
    Ok(first as u32)
}
