//! The `projects` read model: one row per project, folded from its events.
//!
//! Layout: this module holds the row, the feed consumer and its SQL;
//! `apply` folds one event into the rows in memory; `versions` folds one
//! project's events into its row at each version ([`ProjectVersions`]).

mod apply;
mod versions;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use domain::ProjectStatus;
use infrastructure::feed::{
    checkpoint_cte, CheckpointMove, ConsumerError, FeedConsumer, StoredEvent,
};
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments as _, PgConnection};

use crate::recent::RecentRows;
use apply::apply;
use uuid::Uuid;

pub use versions::{FoldError, ProjectVersions, Version};

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
    /// Where the project is in its lifecycle. The column holds its code
    /// ([`ProjectStatus::as_str`]), and its CHECK constraint admits no
    /// other, so reading anything else is a decode error, never a guess.
    #[sqlx(try_from = "String")]
    pub status: ProjectStatus,
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
///
/// After each committed batch it keeps the rows it wrote in memory
/// ([`RecentRows`]), before its runner reports the commit, so a mutation in
/// this process that waits for the commit answers with its own write
/// without reading the table.
#[derive(Debug)]
pub struct ProjectsProjection {
    /// Rows written by the batch in flight, kept once it commits.
    pending: std::sync::Mutex<Vec<ProjectRow>>,
    recent: RecentRows,
    /// `SELECT` of the touched rows, on this projection's table.
    select_sql: String,
    /// The batched upsert, on this projection's table.
    upsert_sql: String,
    /// The batched upsert and the checkpoint's move in one statement.
    one_statement_sql: String,
}

impl Default for ProjectsProjection {
    fn default() -> Self {
        Self::with_table(Self::NAME)
    }
}

impl ProjectsProjection {
    /// The consumer name (its checkpoint key).
    pub const NAME: &'static str = "projects";

    /// A projection writing to `projects`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A projection writing to `table` (a table shaped like `projects`,
    /// e.g. the shadow table a rebuild fills) instead of `projects`.
    /// `table` must be a trusted identifier: it is put into the SQL as is.
    pub fn with_table(table: &str) -> Self {
        let rows = ROWS.replace("{table}", table);
        Self {
            pending: std::sync::Mutex::new(Vec::new()),
            recent: RecentRows::default(),
            select_sql: format!("SELECT * FROM {table} WHERE id = ANY($1)"),
            upsert_sql: format!("{rows} {ON_CONFLICT}"),
            one_statement_sql: format!(
                "WITH {}, written AS ({rows} WHERE EXISTS (SELECT 1 FROM moved) {ON_CONFLICT}) \
                 SELECT count(*) FROM moved",
                checkpoint_cte(16)
            ),
        }
    }

    /// The latest committed row per project, as this projection wrote them.
    pub fn recent(&self) -> RecentRows {
        self.recent.clone()
    }

    /// The rows `events` touch, folded in memory from their current rows
    /// (read on `conn`) and the events.
    async fn fold(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<Vec<ProjectRow>, ConsumerError> {
        self.set_pending(Vec::new());
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.aggregate_type == <domain::Project as cqrs_es::Aggregate>::TYPE)
            .collect();
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Only projects whose history does not start in this batch can have
        // a row to build on. One that starts here (its creation, sequence 1)
        // has none: a row left by an earlier run of this same batch (its
        // checkpoint lost) is rebuilt from the same events and overwritten.
        let mut seen = HashSet::with_capacity(events.len());
        let mut ids = Vec::new();
        for event in &events {
            let id = Uuid::parse_str(&event.aggregate_id)
                .map_err(|_| ProjectionError::BadId(event.aggregate_id.clone()))?;
            if seen.insert(id) && event.sequence > 1 {
                ids.push(id);
            }
        }
        let existing: Vec<ProjectRow> = if ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(&self.select_sql)
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?
        };
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
        Ok(touched.iter().filter_map(|id| rows.remove(id)).collect())
    }

    fn set_pending(&self, rows: Vec<ProjectRow>) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = rows;
        }
    }
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
        let rows = self.fold(tx, events).await?;
        if !rows.is_empty() {
            sqlx::query_with(&self.upsert_sql, upsert_arguments(&rows)?)
                .execute(tx)
                .await?;
        }
        self.set_pending(rows);
        Ok(())
    }

    async fn handle_in_one_statement(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
        checkpoint: &CheckpointMove<'_>,
    ) -> Result<Option<bool>, ConsumerError> {
        // The rows to build on are read first, outside the statement: only
        // this runner writes them, and the checkpoint's compare-and-set
        // refuses the write should a rebuild have switched tables since.
        let rows = self.fold(conn, events).await?;
        let moved = checkpoint
            .execute(conn, &self.one_statement_sql, upsert_arguments(&rows)?)
            .await?;
        self.set_pending(if moved { rows } else { Vec::new() });
        Ok(Some(moved))
    }

    async fn on_activate(&self) {
        self.set_pending(Vec::new());
        // Another process may have written rows while this one was not active.
        self.recent.clear();
    }

    async fn after_commit(&self) {
        let rows = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return,
        };
        if !rows.is_empty() {
            self.recent.record(&rows);
        }
    }
}

/// The rows, from 15 arrays; `{table}` is replaced by the target table.
const ROWS: &str = "\
INSERT INTO {table} (id, name, slug, path, backend_port, frontend_port, postgres_port, redis_port,
                      status, version, created_at, updated_at, last_started_at, last_stopped_at, last_error)
SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[],
                     $9::text[], $10::bigint[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[],
                     $14::timestamptz[], $15::text[])";

/// A row already there is replaced (it was folded from it).
const ON_CONFLICT: &str = "\
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, slug = EXCLUDED.slug, path = EXCLUDED.path,
    backend_port = EXCLUDED.backend_port, frontend_port = EXCLUDED.frontend_port,
    postgres_port = EXCLUDED.postgres_port, redis_port = EXCLUDED.redis_port,
    status = EXCLUDED.status, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
    last_started_at = EXCLUDED.last_started_at, last_stopped_at = EXCLUDED.last_stopped_at,
    last_error = EXCLUDED.last_error";

/// The rows as the 15 array parameters of [`ROWS`].
fn upsert_arguments(rows: &[ProjectRow]) -> Result<PgArguments, BoxDynError> {
    fn col<T>(rows: &[ProjectRow], f: impl Fn(&ProjectRow) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }
    let mut args = PgArguments::default();
    args.add(col(rows, |r| r.id))?;
    args.add(col(rows, |r| r.name.clone()))?;
    args.add(col(rows, |r| r.slug.clone()))?;
    args.add(col(rows, |r| r.path.clone()))?;
    args.add(col(rows, |r| r.backend_port))?;
    args.add(col(rows, |r| r.frontend_port))?;
    args.add(col(rows, |r| r.postgres_port))?;
    args.add(col(rows, |r| r.redis_port))?;
    args.add(col(rows, |r| r.status.as_str()))?;
    args.add(col(rows, |r| r.version))?;
    args.add(col(rows, |r| r.created_at))?;
    args.add(col(rows, |r| r.updated_at))?;
    args.add(col(rows, |r| r.last_started_at))?;
    args.add(col(rows, |r| r.last_stopped_at))?;
    args.add(col(rows, |r| r.last_error.clone()))?;
    Ok(args)
}
