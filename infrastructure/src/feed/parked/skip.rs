//! Giving up on one parked event ([`skip_parked`]).

use sqlx::PgPool;
use uuid::Uuid;

use super::{lock_parked, ParkedEvent, PARKED_COLUMNS};

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
