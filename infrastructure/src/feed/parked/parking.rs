//! How events get parked, and which aggregates wait behind them: the
//! shared parking lock with the read of the held-back aggregates (see the
//! module docs of `parked`), the parked row itself, and the split of a
//! batch into the events to hand over and those held back.

use std::borrow::Cow;
use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use super::lock_key;
use crate::feed::event::StoredEvent;

/// Aggregates (type, id) with parked events, each with its first parked event.
pub type HeldBack = HashMap<(String, String), Uuid>;

/// The first parked event of each aggregate `$1` has parked events of.
const FIRST_PARKED: &str =
    "SELECT DISTINCT ON (aggregate_type, aggregate_id) aggregate_type, aggregate_id, event_id \
     FROM parked_events WHERE consumer = $1 \
     ORDER BY aggregate_type, aggregate_id, transaction_id, position";

/// Takes the consumer's parking lock in shared mode for the rest of the
/// transaction `tx`, then reads which aggregates have parked events.
pub(crate) async fn lock_and_read_held_back(
    tx: &mut PgConnection,
    consumer: &str,
) -> Result<HeldBack, sqlx::Error> {
    // One round trip: the lock is taken by the function scan, the list read
    // by the sub-select. Both run in this statement's snapshot; a list a bit
    // older than the lock only holds back more (see the module docs).
    let held: serde_json::Value = sqlx::query_scalar(&format!(
        "SELECT (SELECT coalesce(json_agg(json_build_array(aggregate_type, aggregate_id, event_id)), '[]'::json) \
                 FROM ({FIRST_PARKED}) AS first) \
         FROM pg_advisory_xact_lock_shared(hashtext($2))"
    ))
    .bind(consumer)
    .bind(lock_key(consumer))
    .fetch_one(tx)
    .await?;
    let rows: Vec<(String, String, Uuid)> =
        serde_json::from_value(held).map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
    Ok(held_back_from(rows))
}

/// The aggregates `consumer` has parked events of, each with its first one
/// (for a replay outside a runner that resumes: a rebuild).
///
/// # Errors
/// Fails when the query fails.
pub async fn held_back(conn: &mut PgConnection, consumer: &str) -> Result<HeldBack, sqlx::Error> {
    let rows: Vec<(String, String, Uuid)> = sqlx::query_as(FIRST_PARKED)
        .bind(consumer)
        .fetch_all(conn)
        .await?;
    Ok(held_back_from(rows))
}

fn held_back_from(rows: Vec<(String, String, Uuid)>) -> HeldBack {
    rows.into_iter()
        .map(|(aggregate_type, aggregate_id, first)| ((aggregate_type, aggregate_id), first))
        .collect()
}

/// The events to hand to the consumer, and those held behind a parked
/// event of their aggregate (with that event).
pub(crate) fn split_held<'a>(
    events: &'a [StoredEvent],
    held_back: &HeldBack,
) -> (Cow<'a, [StoredEvent]>, Vec<(&'a StoredEvent, Uuid)>) {
    if held_back.is_empty() {
        return (Cow::Borrowed(events), Vec::new());
    }
    let mut to_handle = Vec::with_capacity(events.len());
    let mut held = Vec::new();
    for event in events {
        match held_back.get(&aggregate_of(event)) {
            Some(first) => held.push((event, *first)),
            None => to_handle.push(event.clone()),
        }
    }
    (Cow::Owned(to_handle), held)
}

/// The key of `event`'s aggregate in [`HeldBack`].
pub(crate) fn aggregate_of(event: &StoredEvent) -> (String, String) {
    (event.aggregate_type.clone(), event.aggregate_id.clone())
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

/// For a replay outside a runner (a rebuild): parks, under `consumer` and
/// inside `tx`, the events of `events` whose rows cannot be read back and
/// the later events of their aggregates (and of the aggregates already in
/// `held`, which it extends), as a runner would; returns the others, to be
/// handed to the consumer (borrowed when that is all of them, as nearly
/// always: a rebuild's batch is not copied).
///
/// # Errors
/// Fails when the database fails.
pub async fn park_unreadable_in_replay<'a>(
    tx: &mut PgConnection,
    consumer: &str,
    events: &'a [StoredEvent],
    held: &mut HeldBack,
) -> Result<Cow<'a, [StoredEvent]>, sqlx::Error> {
    if held.is_empty() && events.iter().all(|e| e.unreadable.is_none()) {
        return Ok(Cow::Borrowed(events));
    }
    let mut to_handle = Vec::with_capacity(events.len());
    for event in events {
        let aggregate = aggregate_of(event);
        if let Some(error) = &event.unreadable {
            park(tx, consumer, event, Parking::Failed { error, attempts: 1 }).await?;
            held.entry(aggregate).or_insert(event.event_id);
        } else if let Some(first) = held.get(&aggregate) {
            park(tx, consumer, event, Parking::HeldBehind(*first)).await?;
        } else {
            to_handle.push(event.clone());
        }
    }
    Ok(Cow::Owned(to_handle))
}
