//! Reading the read models: projects, statistics and the event log.

use chrono::{DateTime, Utc};
use domain::subject::pattern::escape_like;
use domain::{ProjectStatus, SubjectFilter};
use infrastructure::feed::FeedPosition;
use infrastructure::nats::Envelope;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cursor::{
    decode_event_cursor, decode_project_cursor, encode_event_cursor, encode_project_cursor,
    CursorError,
};
use crate::projects::ProjectRow;

/// One page of a cursor-paginated list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items with their cursors, in list order.
    pub items: Vec<(String, T)>,
    /// Whether more items may follow the last one.
    pub has_next_page: bool,
    /// Where the next page starts when that is past the last item: a page
    /// of events that stopped at its scan before it was full goes on after
    /// the last event it read (the cursor of that event, which need not
    /// match). None when the next page starts right after the last item.
    pub resume_after: Option<String>,
}

impl<T> Page<T> {
    /// The `after` of the next page, when there is one and this page is
    /// not empty or stopped at its scan.
    pub fn next_cursor(&self) -> Option<String> {
        if !self.has_next_page {
            return None;
        }
        self.resume_after
            .clone()
            .or_else(|| self.items.last().map(|(cursor, _)| cursor.clone()))
    }
}

/// Most rows of the event log a page of events reads in feed order when
/// no index of its own bounds its filter (`HUB_EVENTS_PAGE_SCAN_ROWS`).
pub const DEFAULT_PAGE_SCAN: u32 = 10_000;

/// Counts of projects per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
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

/// Which projects to list.
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    /// Only this status; without it, every project that is not deleted.
    pub status: Option<ProjectStatus>,
    /// Case-insensitive substring of the name or slug.
    pub search: Option<String>,
}

/// Which events to list. Every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// NATS subject pattern, or a `LIKE` pattern with `%`.
    pub subject: Option<SubjectFilter>,
    /// Events of one aggregate.
    pub aggregate_id: Option<String>,
    /// Events of one request.
    pub correlation_id: Option<String>,
    /// Only these event types.
    pub event_types: Option<Vec<String>>,
    /// Recorded at or after.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before.
    pub until: Option<DateTime<Utc>>,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A cursor that this service did not hand out.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl QueryError {
    /// Whether the failure is the database being unreachable.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(err) if infrastructure::error::is_unavailable(err))
    }

    /// Whether PostgreSQL cancelled the statement (SQLSTATE 57014): it ran
    /// past the `statement_timeout` of the reads' sessions.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(db))
            if db.code().is_some_and(|code| code == "57014"))
    }

    /// Whether the database refused a value the client gave (SQLSTATE class
    /// 22, data exception: text it cannot hold, a number out of range): the
    /// request's fault, not the hub's.
    pub fn is_bad_value(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(db))
            if db.code().is_some_and(|code| code.starts_with("22")))
    }
}

/// The read side: answers queries from the read models.
#[derive(Clone, Debug)]
pub struct ReadModels {
    pool: PgPool,
    page_scan: u32,
}

const PROJECT_LIST: &str = "\
SELECT * FROM projects
WHERE (CASE WHEN $1::text IS NULL THEN status <> 'DELETED' ELSE status = $1 END)
  AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\\' OR slug ILIKE $2 ESCAPE '\\')
  AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid))
ORDER BY created_at, id
LIMIT $5";

impl ReadModels {
    /// Reads from `pool`; a page of events reads at most
    /// [`DEFAULT_PAGE_SCAN`] rows.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            page_scan: DEFAULT_PAGE_SCAN,
        }
    }

    /// A page of events without an index of its own reads at most `rows`
    /// rows of the log (at least its size) before it answers what it found.
    #[must_use]
    pub fn with_page_scan(self, rows: u32) -> Self {
        Self {
            page_scan: rows,
            ..self
        }
    }

    /// The pool the read models are read from.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A project by id, deleted ones included.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn project(&self, id: Uuid) -> Result<Option<ProjectRow>, QueryError> {
        Ok(sqlx::query_as("SELECT * FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The live project with this slug.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn project_by_slug(&self, slug: &str) -> Result<Option<ProjectRow>, QueryError> {
        Ok(sqlx::query_as(
            "SELECT * FROM projects WHERE slug = $1 AND status <> 'DELETED' \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A page of projects in creation order.
    ///
    /// # Errors
    /// A foreign cursor, or the database fails.
    pub async fn projects(
        &self,
        filter: &ProjectFilter,
        first: u32,
        after: Option<&str>,
    ) -> Result<Page<ProjectRow>, QueryError> {
        let after = after.map(decode_project_cursor).transpose()?;
        let search = filter
            .search
            .as_deref()
            .map(|s| format!("%{}%", escape_like(s)));
        let mut rows: Vec<ProjectRow> = sqlx::query_as(PROJECT_LIST)
            .bind(filter.status.map(|s| s.as_str()))
            .bind(search)
            .bind(after.map(|(at, _)| at))
            .bind(after.map(|(_, id)| id))
            .bind(i64::from(first) + 1)
            .fetch_all(&self.pool)
            .await?;
        let has_next_page = rows.len() > first as usize;
        rows.truncate(first as usize);
        Ok(Page {
            items: rows
                .into_iter()
                .map(|row| (encode_project_cursor(row.created_at, row.id), row))
                .collect(),
            has_next_page,
            resume_after: None,
        })
    }

    /// Counts per status.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn stats(&self) -> Result<ProjectStats, QueryError> {
        Ok(sqlx::query_as("SELECT * FROM project_stats")
            .fetch_one(&self.pool)
            .await?)
    }

    /// A page of events in feed order (how each filter's page stays
    /// bounded: `event_list`). A page that read as many rows as its scan
    /// allows holds the matches among them, possibly fewer than `first` or
    /// none, and its next cursor is the last row it read.
    ///
    /// # Errors
    /// A foreign cursor, or the database fails.
    pub async fn events(
        &self,
        filter: &EventFilter,
        first: u32,
        after: Option<&str>,
    ) -> Result<Page<Envelope>, QueryError> {
        let after = after
            .map(decode_event_cursor)
            .transpose()?
            .unwrap_or(FeedPosition::START);
        let crate::event_list::Rows {
            events: mut rows,
            scanned_to,
        } = crate::event_list::page_rows(
            &self.pool,
            filter,
            after,
            i64::from(first) + 1,
            i64::from(self.page_scan),
        )
        .await?;
        let more = rows.len() > first as usize;
        rows.truncate(first as usize);
        Ok(Page {
            items: rows
                .into_iter()
                .map(|row| (encode_event_cursor(row.feed_position()), row))
                .collect(),
            has_next_page: more || scanned_to.is_some(),
            resume_after: scanned_to.map(encode_event_cursor),
        })
    }

    /// One event by id.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn event(&self, id: Uuid) -> Result<Option<Envelope>, QueryError> {
        Ok(sqlx::query_as("SELECT * FROM event_log WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The first `first` events of one aggregate, in sequence order.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn history(
        &self,
        aggregate_id: &str,
        first: u32,
    ) -> Result<Vec<Envelope>, QueryError> {
        Ok(sqlx::query_as(
            "SELECT * FROM event_log WHERE aggregate_id = $1 ORDER BY sequence LIMIT $2",
        )
        .bind(aggregate_id)
        .bind(i64::from(first))
        .fetch_all(&self.pool)
        .await?)
    }
}
