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

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

use super::consumer::{ConsumerError, FeedConsumer};
use super::event::{FeedPosition, StoredEvent, EVENT_COLUMNS};

/// Aggregates (type, id) with parked events, each with its first parked event.
pub type HeldBack = HashMap<(String, String), Uuid>;

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

/// Takes the consumer's parking lock in shared mode for the rest of the
/// transaction `tx`, then reads which aggregates have parked events.
pub(crate) async fn lock_and_read_held_back(
    tx: &mut PgConnection,
    consumer: &str,
) -> Result<HeldBack, sqlx::Error> {
    // One round trip: the lock is taken by the function scan, the list read
    // by the sub-select. Both run in this statement's snapshot; a list a bit
    // older than the lock only holds back more (see the module docs).
    let held: serde_json::Value = sqlx::query_scalar(
        "SELECT (SELECT coalesce(json_agg(json_build_array(aggregate_type, aggregate_id, event_id)), '[]'::json) \
                 FROM (SELECT DISTINCT ON (aggregate_type, aggregate_id) aggregate_type, aggregate_id, event_id \
                       FROM parked_events WHERE consumer = $1 \
                       ORDER BY aggregate_type, aggregate_id, transaction_id, position) AS first) \
         FROM pg_advisory_xact_lock_shared(hashtext($2))",
    )
    .bind(consumer)
    .bind(lock_key(consumer))
    .fetch_one(tx)
    .await?;
    let rows: Vec<(String, String, Uuid)> =
        serde_json::from_value(held).map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
    Ok(rows
        .into_iter()
        .map(|(aggregate_type, aggregate_id, first)| ((aggregate_type, aggregate_id), first))
        .collect())
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

/// What a parked row says about its event.
pub(crate) enum Parking<'a> {
    /// The consumer failed on it.
    Failed {
        /// The consumer's error.
        error: &'a str,
        /// Attempts made, including the one on its own.
        attempts: i32,
    },
    /// It waits behind this earlier parked event of its aggregate.
    HeldBehind(Uuid),
}

/// Parks `event` for `consumer` inside `tx`.
pub(crate) async fn park(
    tx: &mut PgConnection,
    consumer: &str,
    event: &StoredEvent,
    parking: Parking<'_>,
) -> Result<(), sqlx::Error> {
    let (error, held_behind, attempts) = match parking {
        Parking::Failed { error, attempts } => (Some(error), None, attempts),
        Parking::HeldBehind(first) => (None, Some(first), 0),
    };
    // A row for the event already exists only if the same batch was parked
    // before and its checkpoint then failed to commit: keep that row.
    sqlx::query(
        "INSERT INTO parked_events \
             (consumer, event_id, transaction_id, position, aggregate_type, aggregate_id, sequence, \
              event_type, held_behind, error, attempts) \
         VALUES ($1, $2, $3::text::xid8, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event.event_id)
    .bind(event.transaction_id.to_string())
    .bind(event.position)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.sequence)
    .bind(&event.event_type)
    .bind(held_behind)
    .bind(error)
    .bind(attempts)
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

/// What [`retry_parked`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryReport {
    /// Events handled and removed from the table, in the order replayed.
    pub replayed: Vec<ParkedEvent>,
    /// Events still parked, as they are now: failed again (new error), or
    /// held behind an event of their aggregate that failed again.
    pub still_parked: Vec<ParkedEvent>,
}

/// Why a retry stopped early. What it replayed so far stays replayed.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Another retry of the same consumer is running.
    #[error("a retry of {0} is already running")]
    AlreadyRunning(String),
    /// A parked row names an event the store does not have.
    #[error("parked event {0} is not in the event store")]
    MissingEvent(Uuid),
    /// A service the consumer needs is unavailable; nothing was counted
    /// against the event. Run the retry again later.
    #[error("the consumer could not reach a service it needs: {0}")]
    Outage(ConsumerError),
}

/// Replays `consumer`'s parked events in feed order through
/// [`FeedConsumer::handle`], one transaction each: an event handled is
/// removed from the table in the same transaction; one that fails again
/// stays, with its error, attempts and `last_retry_at` updated, and the
/// later parked events of its aggregate stay held behind it (they are not
/// tried, so the aggregate's order is kept).
///
/// Safe while the consumer's runner is active in any process (see the
/// module docs); two retries of one consumer do not run at once.
///
/// # Errors
/// Fails when the database fails, another retry of the consumer runs, a
/// parked event is missing from the store, or the consumer reports an
/// outage ([`FeedConsumer::is_outage`]).
#[tracing::instrument(skip_all, fields(consumer = consumer.name()))]
pub async fn retry_parked(
    pool: &PgPool,
    consumer: &dyn FeedConsumer,
) -> Result<RetryReport, RetryError> {
    let name = consumer.name().to_owned();
    // A connection of its own: the retry lock lives as long as it does.
    let mut conn = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(format!("hub.feed.{name}.retry"))
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        return Err(RetryError::AlreadyRunning(name));
    }
    let result = replay_all(&mut conn, consumer, &name).await;
    let _ = conn.close().await;
    result
}

async fn replay_all(
    conn: &mut PgConnection,
    consumer: &dyn FeedConsumer,
    name: &str,
) -> Result<RetryReport, RetryError> {
    let mut report = RetryReport::default();
    // Aggregates whose event failed again in this run, with that event.
    let mut failed: HashMap<(String, String), Uuid> = HashMap::new();
    let mut after = FeedPosition::START;
    loop {
        let mut tx = conn.begin().await?;
        lock_parked(&mut tx, name).await?;
        let next: Option<ParkedEvent> = sqlx::query_as(&format!(
            "SELECT {PARKED_COLUMNS} FROM parked_events \
             WHERE consumer = $1 AND (parked_events.transaction_id, position) > ($2::text::xid8, $3) \
             ORDER BY parked_events.transaction_id, position LIMIT 1 FOR UPDATE"
        ))
        .bind(name)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(parked) = next else {
            tx.commit().await?;
            break;
        };
        after = parked.feed_position();
        let aggregate = (parked.aggregate_type.clone(), parked.aggregate_id.clone());
        if let Some(&first) = failed.get(&aggregate) {
            let held = hold_again(&mut tx, &parked, first).await?;
            tx.commit().await?;
            report.still_parked.push(held);
            continue;
        }
        let event: StoredEvent = {
            let row = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1"
            ))
            .bind(parked.event_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(RetryError::MissingEvent(parked.event_id))?;
            StoredEvent::from_row(&row)?
        };
        // A savepoint: a failure rolls back the consumer's writes but keeps
        // the transaction, which then records the new error.
        let mut attempt = tx.begin().await?;
        let handled = match &event.unreadable {
            Some(reason) => Err(ConsumerError::from(reason.clone())),
            None => {
                consumer
                    .handle(&mut attempt, std::slice::from_ref(&event))
                    .await
            }
        };
        match handled {
            Ok(()) => {
                attempt.commit().await?;
                sqlx::query("DELETE FROM parked_events WHERE consumer = $1 AND event_id = $2")
                    .bind(name)
                    .bind(parked.event_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                consumer.after_commit().await;
                tracing::info!(event_id = %parked.event_id, "parked event replayed");
                report.replayed.push(parked);
            }
            Err(err) if consumer.is_outage(&err) => {
                attempt.rollback().await?;
                tx.rollback().await?;
                return Err(RetryError::Outage(err));
            }
            Err(err) => {
                attempt.rollback().await?;
                let failed_again: ParkedEvent = sqlx::query_as(&format!(
                    "UPDATE parked_events \
                     SET error = $3, held_behind = NULL, attempts = attempts + 1, last_retry_at = now() \
                     WHERE consumer = $1 AND event_id = $2 RETURNING {PARKED_COLUMNS}"
                ))
                .bind(name)
                .bind(parked.event_id)
                .bind(err.to_string())
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                tracing::warn!(event_id = %parked.event_id, error = %err, "parked event failed again");
                failed.insert(aggregate, parked.event_id);
                report.still_parked.push(failed_again);
            }
        }
    }
    Ok(report)
}

/// The aggregates `consumer` has parked events of, each with its first one
/// (for a replay outside a runner that resumes: a rebuild).
///
/// # Errors
/// Fails when the query fails.
pub async fn held_back(conn: &mut PgConnection, consumer: &str) -> Result<HeldBack, sqlx::Error> {
    let rows: Vec<(String, String, Uuid)> = sqlx::query_as(
        "SELECT DISTINCT ON (aggregate_type, aggregate_id) aggregate_type, aggregate_id, event_id \
         FROM parked_events WHERE consumer = $1 \
         ORDER BY aggregate_type, aggregate_id, transaction_id, position",
    )
    .bind(consumer)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(aggregate_type, aggregate_id, first)| ((aggregate_type, aggregate_id), first))
        .collect())
}

/// For a replay outside a runner (a rebuild): parks, under `consumer` and
/// inside `tx`, the events of `events` whose rows cannot be read back and
/// the later events of their aggregates (and of the aggregates already in
/// `held`, which it extends), as a runner would; returns the others, to be
/// handed to the consumer.
///
/// # Errors
/// Fails when the database fails.
pub async fn park_unreadable_in_replay(
    tx: &mut PgConnection,
    consumer: &str,
    events: &[StoredEvent],
    held: &mut HeldBack,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    if held.is_empty() && events.iter().all(|e| e.unreadable.is_none()) {
        return Ok(events.to_vec());
    }
    let mut to_handle = Vec::with_capacity(events.len());
    for event in events {
        let aggregate = (event.aggregate_type.clone(), event.aggregate_id.clone());
        if let Some(error) = &event.unreadable {
            park(tx, consumer, event, Parking::Failed { error, attempts: 1 }).await?;
            held.entry(aggregate).or_insert(event.event_id);
        } else if let Some(first) = held.get(&aggregate) {
            park(tx, consumer, event, Parking::HeldBehind(*first)).await?;
        } else {
            to_handle.push(event.clone());
        }
    }
    Ok(to_handle)
}

/// What [`skip_parked`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkipReport {
    /// The event, as it was parked; it stays in the store, and this
    /// consumer will not handle it.
    pub skipped: ParkedEvent,
    /// Events of its aggregate still parked behind it: replay them with
    /// [`retry_parked`].
    pub held_behind: i64,
}

/// Gives up on one of `consumer`'s parked events: removes it from the
/// parked events, so the consumer never handles it (the event stays in the
/// store, and other consumers are not affected). For an event that cannot
/// succeed, such as one whose stored row cannot be read back. Events of its
/// aggregate parked behind it stay parked until [`retry_parked`] replays
/// them. Returns `None` when the consumer has no such parked event.
///
/// # Errors
/// Fails when the database fails.
pub async fn skip_parked(
    pool: &PgPool,
    consumer: &str,
    event_id: Uuid,
) -> Result<Option<SkipReport>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_parked(&mut tx, consumer).await?;
    let skipped: Option<ParkedEvent> = sqlx::query_as(&format!(
        "DELETE FROM parked_events WHERE consumer = $1 AND event_id = $2 RETURNING {PARKED_COLUMNS}"
    ))
    .bind(consumer)
    .bind(event_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(skipped) = skipped else {
        tx.rollback().await?;
        return Ok(None);
    };
    let held_behind: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM parked_events \
         WHERE consumer = $1 AND aggregate_type = $2 AND aggregate_id = $3",
    )
    .bind(consumer)
    .bind(&skipped.aggregate_type)
    .bind(&skipped.aggregate_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::warn!(consumer, %event_id, "parked event skipped");
    Ok(Some(SkipReport {
        skipped,
        held_behind,
    }))
}

/// Keeps a parked event held behind `first`, an earlier event of its
/// aggregate that failed again in this retry.
async fn hold_again(
    tx: &mut PgConnection,
    parked: &ParkedEvent,
    first: Uuid,
) -> Result<ParkedEvent, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE parked_events SET held_behind = $3, error = NULL, last_retry_at = now() \
         WHERE consumer = $1 AND event_id = $2 RETURNING {PARKED_COLUMNS}"
    ))
    .bind(&parked.consumer)
    .bind(parked.event_id)
    .bind(first)
    .fetch_one(tx)
    .await
}
