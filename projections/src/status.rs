//! Where each read model stands: checkpoint, lag, parked events, the code
//! version its table was built with, and whether a rebuild is under way (for
//! `hub projections list` and the start-up rebuild of outdated read models).

use chrono::{DateTime, Utc};
use infrastructure::feed::FeedPosition;
use sqlx::{PgConnection, PgPool};

use crate::rebuild::Rebuildable;

/// The state of a read model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectionState {
    /// Serving from its table, no rebuild under way.
    Live,
    /// Serving from its table while a rebuild (running or interrupted) fills
    /// a shadow table.
    Rebuilding {
        /// Events in the shadow table so far.
        done: i64,
        /// Events in the store.
        total: i64,
    },
}

/// One line of `hub projections list`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectionStatus {
    /// The consumer name.
    pub name: &'static str,
    /// The live consumer's checkpoint.
    pub checkpoint: FeedPosition,
    /// Events the live consumer has handled.
    pub handled: i64,
    /// Committed events it has not handled yet.
    pub lag_events: i64,
    /// How long the oldest of those has been waiting (zero when none).
    pub lag_seconds: f64,
    /// Live or rebuilding.
    pub state: ProjectionState,
    /// The code version the live table was built with (1 for tables built
    /// before versions were recorded).
    pub version: i32,
    /// The projection's code version now ([`Rebuildable::code_version`]).
    pub code_version: i32,
    /// Events the live consumer has parked (`hub projections retry` replays them).
    pub parked: i64,
}

impl ProjectionStatus {
    /// Whether the table was built by an older version of the projection's
    /// code and should be rebuilt.
    pub fn is_outdated(&self) -> bool {
        self.version < self.code_version
    }
}

/// The status of every rebuildable read model.
///
/// # Errors
/// Fails when a query fails.
pub async fn list(pool: &PgPool, hub_id: &str) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut out = Vec::new();
    for projection in Rebuildable::all(hub_id) {
        let name = projection.name();
        let (checkpoint, handled) = checkpoint_of(&mut conn, name).await?;
        let lag_events = infrastructure::feed::consumer_lag(&mut *conn, name).await?;
        let (_, oldest) = lag_on(&mut conn, name).await?;
        let lag_seconds = seconds_since(oldest);
        let shadow: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(projection.shadow_table())
            .fetch_one(&mut *conn)
            .await?;
        let state = if shadow {
            let key = projection.rebuild_consumer();
            let (_, done) = checkpoint_of(&mut conn, &key).await?;
            let (left, _) = lag_on(&mut conn, &key).await?;
            ProjectionState::Rebuilding {
                done,
                total: done + left,
            }
        } else {
            ProjectionState::Live
        };
        let parked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM parked_events WHERE consumer = $1")
                .bind(name)
                .fetch_one(&mut *conn)
                .await?;
        out.push(ProjectionStatus {
            name,
            checkpoint,
            handled,
            lag_events,
            lag_seconds,
            state,
            version: stored_version(&mut conn, name).await?,
            code_version: projection.code_version(),
            parked,
        });
    }
    Ok(out)
}

/// Where a feed consumer that is not a read model stands (the NATS relay,
/// the orchestration process manager): they have no table to rebuild, but
/// they can lag and park events.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerLine {
    /// The consumer name.
    pub name: &'static str,
    /// Its checkpoint.
    pub checkpoint: FeedPosition,
    /// Events it has handled.
    pub handled: i64,
    /// Committed events it has not handled yet.
    pub lag_events: i64,
    /// How long the oldest of those has been waiting (zero when none).
    pub lag_seconds: f64,
    /// Events it has parked (only events whose rows cannot be read back:
    /// these consumers stop on any other event they fail on).
    pub parked: i64,
}

/// The feed consumers that are not read models.
pub const OTHER_CONSUMERS: [&str; 2] = [
    infrastructure::nats::NatsRelay::NAME,
    infrastructure::orchestration::ProcessManager::NAME,
];

/// The status of every feed consumer that is not a read model.
///
/// # Errors
/// Fails when a query fails.
pub async fn other_consumers(pool: &PgPool) -> Result<Vec<ConsumerLine>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut out = Vec::new();
    for name in OTHER_CONSUMERS {
        let (checkpoint, handled) = checkpoint_of(&mut conn, name).await?;
        let (lag_events, oldest) = lag_on(&mut conn, name).await?;
        let parked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM parked_events WHERE consumer = $1")
                .bind(name)
                .fetch_one(&mut *conn)
                .await?;
        out.push(ConsumerLine {
            name,
            checkpoint,
            handled,
            lag_events,
            lag_seconds: seconds_since(oldest),
            parked,
        });
    }
    Ok(out)
}

fn seconds_since(oldest: Option<DateTime<Utc>>) -> f64 {
    oldest.map_or(0.0, |at| {
        (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
    })
}

/// The read models whose live table was built by an older version of their
/// projection's code than this build's: the ones a rebuild would change.
///
/// # Errors
/// Fails when a query fails.
pub async fn outdated(pool: &PgPool, hub_id: &str) -> Result<Vec<Rebuildable>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut out = Vec::new();
    for projection in Rebuildable::all(hub_id) {
        if stored_version(&mut conn, projection.name()).await? < projection.code_version() {
            out.push(projection);
        }
    }
    Ok(out)
}

/// The code version a read model's live table was built with. A table
/// without a row was built before versions were recorded: version 1.
async fn stored_version(conn: &mut PgConnection, read_model: &str) -> Result<i32, sqlx::Error> {
    let version: Option<i32> =
        sqlx::query_scalar("SELECT version FROM read_model_versions WHERE read_model = $1")
            .bind(read_model)
            .fetch_optional(conn)
            .await?;
    Ok(version.unwrap_or(1))
}

/// A consumer's checkpoint and handled count (the start when it has none).
pub(crate) async fn checkpoint_of(
    conn: &mut PgConnection,
    consumer: &str,
) -> Result<(FeedPosition, i64), sqlx::Error> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT transaction_id::text::bigint, position, handled \
         FROM feed_checkpoints WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or(
        (FeedPosition::START, 0),
        |(transaction_id, position, handled)| {
            (
                FeedPosition {
                    transaction_id,
                    position,
                },
                handled,
            )
        },
    ))
}

/// Committed events after a consumer's checkpoint, and when the oldest of
/// them was recorded.
pub(crate) async fn lag_on(
    conn: &mut PgConnection,
    consumer: &str,
) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
    sqlx::query_as(
        "WITH checkpoint AS ( \
             SELECT coalesce((SELECT transaction_id FROM feed_checkpoints WHERE consumer = $1), '0'::xid8) AS transaction_id, \
                    coalesce((SELECT position FROM feed_checkpoints WHERE consumer = $1), 0) AS position) \
         SELECT count(*), min(e.recorded_at) FROM events e, checkpoint c \
         WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)",
    )
    .bind(consumer)
    .fetch_one(conn)
    .await
}
