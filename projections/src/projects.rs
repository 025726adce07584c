//! The `projects` read model: one row per project, folded from its events.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{ProjectEvent, ProjectStatus};
use infrastructure::feed::{ConsumerError, FeedConsumer, StoredEvent};
use sqlx::PgConnection;
use uuid::Uuid;

/// A row of `projects`.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProjectRow {
    /// Project id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// URL-safe unique name.
    pub slug: String,
    /// Absolute path of the project's directory.
    pub path: String,
    /// Port of the project's backend.
    pub backend_port: i32,
    /// Port of the project's frontend.
    pub frontend_port: i32,
    /// Port of the project's PostgreSQL.
    pub postgres_port: i32,
    /// Port of the project's Redis.
    pub redis_port: i32,
    /// `STOPPED`, `RUNNING`, ..., `DELETED`.
    pub status: String,
    /// Sequence of the last event applied.
    pub version: i64,
    /// When the project was created.
    pub created_at: DateTime<Utc>,
    /// When the last event was recorded.
    pub updated_at: DateTime<Utc>,
    /// When it last started.
    pub last_started_at: Option<DateTime<Utc>>,
    /// When it last stopped.
    pub last_stopped_at: Option<DateTime<Utc>>,
    /// Why the last start or stop failed.
    pub last_error: Option<String>,
}

/// Feeds `projects` from the store.
///
/// Each batch is folded in memory (one read of the touched rows, one
/// multi-row upsert), so replaying a long history costs a few statements per
/// thousand events, not a few per event.
#[derive(Debug, Default)]
pub struct ProjectsProjection;

impl ProjectsProjection {
    /// The consumer name (its checkpoint key).
    pub const NAME: &'static str = "projects";
}

#[derive(Debug, thiserror::Error)]
enum ProjectionError {
    #[error("event {event_id} ({event_type}) is not a valid project event: {source}")]
    Malformed {
        event_id: Uuid,
        event_type: String,
        source: serde_json::Error,
    },
    #[error(
        "event {event_id} ({event_type}) is for project {aggregate_id}, which was never created"
    )]
    UnknownProject {
        event_id: Uuid,
        event_type: String,
        aggregate_id: String,
    },
    #[error("aggregate id {0} is not a uuid")]
    BadId(String),
}

#[async_trait::async_trait]
impl FeedConsumer for ProjectsProjection {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError> {
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.aggregate_type == <domain::Project as cqrs_es::Aggregate>::TYPE)
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(events.len());
        for event in &events {
            let id = Uuid::parse_str(&event.aggregate_id)
                .map_err(|_| ProjectionError::BadId(event.aggregate_id.clone()))?;
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        let existing: Vec<ProjectRow> = sqlx::query_as("SELECT * FROM projects WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        let mut rows: HashMap<Uuid, ProjectRow> =
            existing.into_iter().map(|row| (row.id, row)).collect();
        let mut touched = Vec::new();
        for event in events {
            let id = Uuid::parse_str(&event.aggregate_id)
                .map_err(|_| ProjectionError::BadId(event.aggregate_id.clone()))?;
            if apply(&mut rows, id, event)? {
                touched.push(id);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let rows: Vec<&ProjectRow> = touched.iter().filter_map(|id| rows.get(id)).collect();
        upsert(tx, &rows).await?;
        Ok(())
    }
}

/// Applies one event to the rows in memory; returns whether a row changed.
fn apply(
    rows: &mut HashMap<Uuid, ProjectRow>,
    id: Uuid,
    event: &StoredEvent,
) -> Result<bool, ProjectionError> {
    let parsed: ProjectEvent = serde_json::from_value(event.payload.clone()).map_err(|source| {
        ProjectionError::Malformed {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            source,
        }
    })?;
    let at = event.recorded_at;
    if let ProjectEvent::ProjectCreated {
        name,
        slug,
        path,
        ports,
        ..
    } = &parsed
    {
        if rows.contains_key(&id) {
            // Already applied (a replay over an existing row).
            return Ok(false);
        }
        let row = ProjectRow {
            id,
            name: name.as_str().to_owned(),
            slug: slug.as_str().to_owned(),
            path: path.as_str().to_owned(),
            backend_port: i32::from(ports.backend),
            frontend_port: i32::from(ports.frontend),
            postgres_port: i32::from(ports.postgres),
            redis_port: i32::from(ports.redis),
            status: ProjectStatus::Stopped.as_str().to_owned(),
            version: event.sequence,
            created_at: at,
            updated_at: at,
            last_started_at: None,
            last_stopped_at: None,
            last_error: None,
        };
        rows.insert(id, row);
        return Ok(true);
    }
    let Some(row) = rows.get_mut(&id) else {
        return Err(ProjectionError::UnknownProject {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
        });
    };
    if event.sequence <= row.version {
        // Already applied (a replay over an existing row).
        return Ok(false);
    }
    match parsed {
        ProjectEvent::ProjectCreated { .. } => {}
        ProjectEvent::ProjectStarted {} => {
            row.status = ProjectStatus::Running.as_str().to_owned();
            row.last_started_at = Some(at);
            row.last_error = None;
        }
        ProjectEvent::ProjectStopped {} => {
            row.status = ProjectStatus::Stopped.as_str().to_owned();
            row.last_stopped_at = Some(at);
            row.last_error = None;
        }
        ProjectEvent::ProjectRenamed { name, slug } => {
            row.name = name.as_str().to_owned();
            row.slug = slug.as_str().to_owned();
        }
        ProjectEvent::ProjectDeleted {} => {
            row.status = ProjectStatus::Deleted.as_str().to_owned();
        }
    }
    row.version = event.sequence;
    row.updated_at = at;
    Ok(true)
}

const UPSERT: &str = "\
INSERT INTO projects (id, name, slug, path, backend_port, frontend_port, postgres_port, redis_port,
                      status, version, created_at, updated_at, last_started_at, last_stopped_at, last_error)
SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[],
                     $9::text[], $10::bigint[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[],
                     $14::timestamptz[], $15::text[])
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, slug = EXCLUDED.slug, path = EXCLUDED.path,
    backend_port = EXCLUDED.backend_port, frontend_port = EXCLUDED.frontend_port,
    postgres_port = EXCLUDED.postgres_port, redis_port = EXCLUDED.redis_port,
    status = EXCLUDED.status, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
    last_started_at = EXCLUDED.last_started_at, last_stopped_at = EXCLUDED.last_stopped_at,
    last_error = EXCLUDED.last_error";

async fn upsert(tx: &mut PgConnection, rows: &[&ProjectRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    fn col<T>(rows: &[&ProjectRow], f: impl Fn(&ProjectRow) -> T) -> Vec<T> {
        rows.iter().map(|row| f(row)).collect()
    }
    sqlx::query(UPSERT)
        .bind(col(rows, |r| r.id))
        .bind(col(rows, |r| r.name.clone()))
        .bind(col(rows, |r| r.slug.clone()))
        .bind(col(rows, |r| r.path.clone()))
        .bind(col(rows, |r| r.backend_port))
        .bind(col(rows, |r| r.frontend_port))
        .bind(col(rows, |r| r.postgres_port))
        .bind(col(rows, |r| r.redis_port))
        .bind(col(rows, |r| r.status.clone()))
        .bind(col(rows, |r| r.version))
        .bind(col(rows, |r| r.created_at))
        .bind(col(rows, |r| r.updated_at))
        .bind(col(rows, |r| r.last_started_at))
        .bind(col(rows, |r| r.last_stopped_at))
        .bind(col(rows, |r| r.last_error.clone()))
        .execute(tx)
        .await?;
    Ok(())
}
