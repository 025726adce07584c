//! GraphQL object types, built from the read models' rows.

use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use infrastructure::nats::Envelope;
use projections::cursor::encode_event_cursor;
use projections::ProjectRow;

use super::error::ApiError;
use crate::state::GraphqlState;

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

/// A project as GraphQL shows it: its `projects` row, rendered.
#[derive(Clone, Debug)]
pub struct Project(ProjectRow);

impl From<ProjectRow> for Project {
    fn from(row: ProjectRow) -> Self {
        Self(row)
    }
}

/// A project as the `projects` read model has it.
#[Object]
impl Project {
    /// Project id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Unique URL-safe name derived from the name.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    /// Absolute path of the project's directory.
    async fn path(&self) -> &str {
        &self.0.path
    }

    /// Lifecycle state.
    async fn status(&self) -> ProjectStatus {
        self.0.status.into()
    }

    /// Ports the project owns.
    async fn ports(&self) -> Ports {
        Ports {
            backend: self.0.backend_port,
            frontend: self.0.frontend_port,
            postgres: self.0.postgres_port,
            redis: self.0.redis_port,
        }
    }

    /// Number of events recorded for the project; pass it as
    /// `expectedVersion` to guard against concurrent changes.
    async fn version(&self) -> i64 {
        self.0.version
    }

    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// When it last started.
    async fn last_started_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_started_at
    }

    /// When it last stopped.
    async fn last_stopped_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_stopped_at
    }

    /// Why the last start or stop failed, if it did.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }

    /// Whether the project is deleted (status `DELETED`): a subscriber's
    /// last message about a project says so; evict the project then.
    async fn deleted(&self) -> bool {
        self.0.status == domain::ProjectStatus::Deleted
    }

    /// The project's events, oldest first.
    #[graphql(complexity = "page_complexity(Some(first), child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100, desc = "At most this many events (0-1000).")] first: i32,
    ) -> Result<Vec<Event>> {
        let first = page_size(Some(first))?;
        let state = ctx.data::<GraphqlState>()?;
        let rows = state
            .hub
            .read
            .history(&self.0.id.to_string(), first)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Event::from).collect())
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
        let ports = project.ports()?;
        let previous = previous.as_ref();
        Some(Self(ProjectRow {
            id: project.id()?.as_uuid(),
            name: project.name()?.as_str().to_owned(),
            slug: project.slug()?.as_str().to_owned(),
            path: project.path()?.as_str().to_owned(),
            backend_port: i32::from(ports.backend),
            frontend_port: i32::from(ports.frontend),
            postgres_port: i32::from(ports.postgres),
            redis_port: i32::from(ports.redis),
            status: project.status()?,
            version: i64::try_from(project.version()).unwrap_or(i64::MAX),
            created_at: previous.map_or(now, |r| r.created_at),
            updated_at: now,
            last_started_at: previous.and_then(|r| r.last_started_at),
            last_stopped_at: previous.and_then(|r| r.last_stopped_at),
            last_error: previous.and_then(|r| r.last_error.clone()),
        }))
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

/// A recorded event as GraphQL shows it: the event's one view
/// ([`Envelope`]), from the event log or from the live feed alike.
#[derive(Clone, Debug)]
pub struct Event(Arc<Envelope>);

impl From<Envelope> for Event {
    fn from(envelope: Envelope) -> Self {
        Self(Arc::new(envelope))
    }
}

impl From<Arc<Envelope>> for Event {
    fn from(envelope: Arc<Envelope>) -> Self {
        Self(envelope)
    }
}

/// A recorded domain event.
#[Object]
impl Event {
    /// Event id (also the NATS message id).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Opaque cursor of the event in commit order: pass it as `after` to
    /// `events` (query or subscription) to continue after this event.
    async fn cursor(&self) -> String {
        encode_event_cursor(self.0.feed_position())
    }

    /// `hub.<hub_id>.<domain>.<action>`.
    async fn subject(&self) -> &str {
        &self.0.subject
    }

    /// e.g. `ProjectCreated`.
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    /// e.g. `1.0`.
    async fn event_version(&self) -> &str {
        &self.0.event_version
    }

    /// e.g. `Project`.
    async fn aggregate_type(&self) -> &str {
        &self.0.aggregate_type
    }

    /// The aggregate instance.
    async fn aggregate_id(&self) -> &str {
        &self.0.aggregate_id
    }

    /// 1-based sequence within the aggregate.
    async fn sequence(&self) -> i64 {
        self.0.sequence
    }

    /// Global insert position in the store.
    async fn position(&self) -> i64 {
        self.0.position
    }

    /// Shared by everything one request caused.
    async fn correlation_id(&self) -> Option<&str> {
        self.0.correlation_id.as_deref()
    }

    /// The message that caused this event.
    async fn causation_id(&self) -> Option<&str> {
        self.0.causation_id.as_deref()
    }

    /// Who and where.
    async fn origin(&self) -> Origin {
        let origin = &self.0.origin;
        Origin {
            hub_id: origin.hub_id.clone(),
            service: origin.service.clone(),
            user: origin.user.clone(),
        }
    }

    /// The event's fields.
    async fn payload(&self) -> async_graphql::Json<&serde_json::Value> {
        async_graphql::Json(&self.0.payload)
    }

    /// When it was recorded.
    async fn timestamp(&self) -> DateTime<Utc> {
        self.0.timestamp
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
