//! Where a replay of the events recorded at or after a time starts.
//!
//! The store orders events by feed position, and `events.recorded_at` has no
//! index; the `event_log` read model has the timestamps' high-water mark
//! and a feed-order index, so it answers the question. Timestamps are not
//! monotonic in feed order (two transactions interleave their inserts, and
//! the clock is read at each insert), so the start is found by feed
//! position, not by time: just before the first event, in feed order,
//! whose high-water mark reaches the time (no event written in feed order
//! before it was recorded at or after the time: see `event_list`), or the
//! first event without a mark that was, whichever comes first. Everything
//! after that point is then read from the store and filtered by time, so
//! an event recorded earlier that sorts later in the feed is left out, and
//! none recorded later is missed.
//!
//! Events the read model has not seen yet (after its checkpoint) and events
//! it parked are not in `event_log`: the start is never later than the
//! first of those, so they are read from the store too.

use chrono::{DateTime, Utc};
use infrastructure::feed::FeedPosition;

use crate::event_log::EventLogProjection;
use crate::queries::{QueryError, ReadModels};

/// The earliest of: just before the first logged event whose high-water
/// mark is at or after `$1`, just before the first logged event without a
/// mark recorded at or after `$1`, just before the first event `event_log`
/// parked, and its checkpoint (the start of the feed when it has none).
/// One statement, so the log and its checkpoint are read in one snapshot
/// (the projection writes both in one transaction, a rebuild swaps both in
/// one).
///
/// Each candidate is one index lookup: the high-water index, the index of
/// the rows without a mark (few), the parked events' and the checkpoint's
/// keys.
const REPLAY_START: &str = "\
WITH checkpoint AS (
    SELECT transaction_id::text::bigint AS transaction_id, position
    FROM feed_checkpoints WHERE consumer = $2)
SELECT transaction_id, position FROM (
    (SELECT transaction_id, position - 1 AS position FROM event_log
     WHERE timestamp_high_water >= $1
     ORDER BY timestamp_high_water, transaction_id, position LIMIT 1)
    UNION ALL
    (SELECT transaction_id, position - 1 AS position FROM event_log
     WHERE timestamp_high_water IS NULL AND \"timestamp\" >= $1
     ORDER BY transaction_id, position LIMIT 1)
    UNION ALL
    (SELECT transaction_id::text::bigint, position - 1 FROM parked_events
     WHERE consumer = $2
     ORDER BY transaction_id, position LIMIT 1)
    UNION ALL
    SELECT transaction_id, position FROM checkpoint
    UNION ALL
    SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM checkpoint)
) AS candidates
ORDER BY transaction_id, position
LIMIT 1";

impl ReadModels {
    /// The feed position to replay after so that every event recorded at
    /// or after `since` is read (with some recorded before it, which the
    /// reader filters out). A position `p - 1` within the transaction of
    /// the event at `p` works as an exclusive bound: positions are unique.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn replay_start_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<FeedPosition, QueryError> {
        let (transaction_id, position): (i64, i64) = sqlx::query_as(REPLAY_START)
            .bind(since)
            .bind(EventLogProjection::NAME)
            .fetch_one(self.pool())
            .await?;
        Ok(FeedPosition {
            transaction_id,
            position,
        })
    }
}
