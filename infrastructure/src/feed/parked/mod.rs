//! Parked (poison) events: written by runners with [`PoisonPolicy::Park`],
//! listed and counted for `hub projections list` and `/health`, and replayed
//! by [`retry_parked`].
//!
//! # Not racing the live runner
//!
//! A retry usually runs in another process (`hub projections retry`) while a
//! hub's runner goes on with the same consumer, so the two share a lock,
//! `hub.feed.<consumer>.parked`: a parking runner takes it in shared mode
//! at the start of each transaction that may park an event (its batches
//! while the consumer has parked events, and every transaction of its
//! search for a poison event), right before it reads which aggregates are
//! held back; each retry transaction takes it exclusively. A retry
//! transaction therefore never overlaps such a batch, and a batch that
//! parked a new event behind an aggregate's parked ones has committed before
//! the retry's next transaction looks for the next parked event, so one
//! retry run replays it too. A batch may read the held-back aggregates just
//! before a retry frees one; it then parks that aggregate's new event behind
//! it (a retry replays it later), which keeps order and loses nothing. While
//! a consumer has no parked events its batches skip the lock and the read:
//! only its one active runner adds parked events, and it knows when it does.
//! A rebuild's switch, which drops the consumer's parked rows, takes the
//! lock exclusively too ([`lock_parked`]), before it locks the table.
//!
//! [`PoisonPolicy::Park`]: super::PoisonPolicy::Park

mod parking;
mod retry;
mod skip;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::event::FeedPosition;

pub(crate) use parking::{aggregate_of, lock_and_read_held_back, park, split_held, Parking};
pub use parking::{held_back, park_unreadable_in_replay, HeldBack};
pub use retry::{retry_parked, RetryError, RetryReport};
pub use skip::{skip_parked, SkipReport};

/// One parked event of one consumer.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ParkedEvent {
    /// The consumer that parked it.
    pub consumer: String,
    /// The event's id.
    pub event_id: Uuid,
    /// Its writing transaction (feed order, first key).
    pub transaction_id: i64,
    /// Its insert position (feed order, second key).
    pub position: i64,
    /// e.g. `Project`.
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// Its sequence within the aggregate.
    pub sequence: i64,
    /// e.g. `ProjectCreated`.
    pub event_type: String,
    /// Set when the event was never tried: the first parked event of the
    /// same aggregate, which it waits behind.
    pub held_behind: Option<Uuid>,
    /// What the consumer said on the last attempt (`None` when held).
    pub error: Option<String>,
    /// Attempts so far (0 when held).
    pub attempts: i32,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
    /// When a retry last tried it (or held it back again).
    pub last_retry_at: Option<DateTime<Utc>>,
}

impl ParkedEvent {
    /// The event's place in the feed.
    pub fn feed_position(&self) -> FeedPosition {
        FeedPosition {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }
}

const PARKED_COLUMNS: &str = "consumer, event_id, transaction_id::text::bigint AS transaction_id, \
     position, aggregate_type, aggregate_id, sequence, event_type, held_behind, error, attempts, \
     parked_at, last_retry_at";

fn lock_key(consumer: &str) -> String {
    format!("hub.feed.{consumer}.parked")
}

/// Takes `consumer`'s parking lock exclusively for the rest of the
/// transaction on `tx`: no batch of its runner and no retry of its parked
/// events runs until that transaction ends. Take it before any table lock
/// (a batch holds it while it writes its tables).
///
/// # Errors
/// Fails when the query fails (e.g. on a `lock_timeout`).
pub async fn lock_parked(tx: &mut PgConnection, consumer: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(lock_key(consumer))
        .execute(tx)
        .await?;
    Ok(())
}

/// A consumer's parked events, in feed order.
///
/// # Errors
/// Fails when the query fails.
pub async fn parked_events(pool: &PgPool, consumer: &str) -> Result<Vec<ParkedEvent>, sqlx::Error> {
    first_parked_events(pool, consumer, i64::MAX).await
}

/// The first `limit` of a consumer's parked events, in feed order.
///
/// # Errors
/// Fails when the query fails.
pub async fn first_parked_events(
    pool: &PgPool,
    consumer: &str,
    limit: i64,
) -> Result<Vec<ParkedEvent>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PARKED_COLUMNS} FROM parked_events WHERE consumer = $1 \
         ORDER BY parked_events.transaction_id, position LIMIT $2"
    ))
    .bind(consumer)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many events each consumer has parked (consumers without any are
/// left out).
///
/// # Errors
/// Fails when the query fails.
pub async fn parked_counts(pool: &PgPool) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT consumer, count(*) FROM parked_events GROUP BY consumer")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Whether `consumer` has parked events.
pub(crate) async fn has_parked(
    conn: &mut PgConnection,
    consumer: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM parked_events WHERE consumer = $1)")
        .bind(consumer)
        .fetch_one(conn)
        .await
}
