//! Replaying a consumer's parked events ([`retry_parked`]), safe while its
//! runner goes on (see the module docs of `parked`).

use std::collections::HashMap;

use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

use super::{lock_parked, ParkedEvent, PARKED_COLUMNS};
use crate::feed::consumer::{ConsumerError, FeedConsumer};
use crate::feed::event::{FeedPosition, StoredEvent, EVENT_COLUMNS};

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
