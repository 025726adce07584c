//! Where each read model stands: checkpoint, lag, and whether a rebuild is
//! under way (for `hub projections list`).

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
        let lag_events = infrastructure::feed::consumer_lag(pool, name).await?;
        let (_, oldest) = lag_on(&mut conn, name).await?;
        let lag_seconds = oldest.map_or(0.0, |at| {
            (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
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
        out.push(ProjectionStatus {
            name,
            checkpoint,
            handled,
            lag_events,
            lag_seconds,
            state,
        });
    }
    Ok(out)
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
