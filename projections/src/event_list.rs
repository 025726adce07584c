//! The event log's filtered pages in feed order, and why each stays bounded
//! as the log grows.
//!
//! A page is the first `limit` rows in feed order (`transaction_id`,
//! `position`) after a cursor that pass every filter. PostgreSQL walks the
//! feed-order index and filters, or reads a filter's own index and sorts:
//! - a subject without wildcards, compared for equality: its index holds
//!   its rows in feed order (migration 0012), so its page after a cursor
//!   reads its own entries only, even past its last event;
//! - a subject pattern, an aggregate or event types: the walk, or the
//!   filter's index when its rows are few;
//! - a correlation id: its index holds its rows in feed order (migration
//!   0011), so its page after a cursor reads its own entries only, even
//!   past its last event (where a walk would filter the rest of the log);
//! - `since`: the walk would filter every row before the first recorded at
//!   or after the time (half of a 10M-row log for a time in its middle). So
//!   the walk starts where those rows can begin, found by the high-water
//!   mark (below), and the few rows without a mark are read apart.
//!
//! Why the `since` page is exact. Timestamps are not monotonic in feed
//! order, but the high-water mark of a row written in feed order (see
//! `event_log::ROWS`) is the latest timestamp of itself and of every such
//! row before it, so it never decreases in feed order and no such row is
//! later than its mark. Let `first` be the first row in feed order whose
//! mark is at or after `since`. Every such row recorded at or after `since`
//! has a mark at or after `since`, so it is `first` or later: the walk from
//! `first` misses none of them. A row without a mark (written after rows
//! that follow it) is read from its own index over the range before that
//! walk, so each row is read by exactly one of the two parts. `first` is
//! the first row in the index on `(mark, transaction_id, position)` from
//! `since` on: marks never decrease in feed order, so the lowest mark at or
//! after `since` is reached first in feed order, and ties are in feed
//! order. All of it is one statement, so one snapshot.

use domain::SubjectFilter;
use infrastructure::feed::FeedPosition;
use infrastructure::nats::Envelope;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgPool, Postgres};

use crate::queries::EventFilter;

/// Every filter; `$1`-`$7` and `$11`, each skipped when null. A subject
/// without wildcards is compared for equality (`$11`, with `$1` null):
/// PostgreSQL then knows the subject index `(subject, transaction_id,
/// position)` reads that subject's rows in feed order, and a page after a
/// cursor past its last event reads nothing. Its `LIKE` would be turned into
/// the same index condition, but not into that order, and the walk of the
/// feed-order index would look cheaper and filter the rest of the log.
const FILTERS: &str = "\
    ($11::text IS NULL OR subject = $11)
    AND ($1::text IS NULL OR (subject LIKE $1 ESCAPE '\\' AND ($2::text IS NULL OR subject ~ $2)))
    AND ($3::text IS NULL OR aggregate_id = $3)
    AND ($4::text IS NULL OR correlation_id = $4)
    AND ($5::text[] IS NULL OR event_type = ANY($5))
    AND ($6::timestamptz IS NULL OR \"timestamp\" >= $6)
    AND ($7::timestamptz IS NULL OR \"timestamp\" < $7)";

/// A page without `since`: from feed position `($8, $9)` on (the one
/// after the cursor), `$10` rows.
///
/// The bound is inclusive on purpose. PostgreSQL estimates a row
/// comparison by its first column alone, so `(transaction_id, position) >
/// (t, p)` counts none of the rows of transaction `t` after `p`: after a
/// cursor in a large transaction it would expect nothing there and walk
/// the feed-order index rather than, say, a correlation id's own entries.
/// `>= (t, p + 1)` selects the same rows and counts all of `t`'s.
fn list() -> String {
    format!(
        "SELECT * FROM event_log WHERE {FILTERS}
           AND (transaction_id, position) >= ($8, $9)
         ORDER BY transaction_id, position
         LIMIT $10"
    )
}

/// A page with `since` (`$6`, not null): the walk from the later of `($8,
/// $9)` and the first row whose high-water mark reaches `since` (none when
/// no row's does), and the rows without a mark from `($8, $9)` to there.
fn list_since() -> String {
    format!(
        "WITH first AS (
             SELECT transaction_id, position FROM event_log
             WHERE timestamp_high_water >= $6
             ORDER BY timestamp_high_water, transaction_id, position
             LIMIT 1),
         walk AS (
             SELECT first.position IS NOT NULL AS found,
                    CASE WHEN (first.transaction_id, first.position) > ($8, $9)
                         THEN first.transaction_id ELSE $8 END AS transaction_id,
                    CASE WHEN (first.transaction_id, first.position) > ($8, $9)
                         THEN first.position ELSE $9 END AS position
             FROM (SELECT 1) AS one LEFT JOIN first ON true)
         SELECT * FROM (
             (SELECT * FROM event_log WHERE {FILTERS}
                AND (SELECT found FROM walk)
                AND (transaction_id, position) >= (SELECT transaction_id, position FROM walk)
              ORDER BY transaction_id, position
              LIMIT $10)
             UNION ALL
             (SELECT * FROM event_log WHERE timestamp_high_water IS NULL AND {FILTERS}
                AND (transaction_id, position) >= ($8, $9)
                AND (NOT (SELECT found FROM walk)
                     OR (transaction_id, position) < (SELECT transaction_id, position FROM walk))
              ORDER BY transaction_id, position
              LIMIT $10)
         ) AS page
         ORDER BY transaction_id, position
         LIMIT $10"
    )
}

/// The feed position right after `after`: the inclusive bound the
/// statements take. None past the last position there can be.
fn successor(after: FeedPosition) -> Option<FeedPosition> {
    match (after.transaction_id, after.position) {
        (t, p) if p < i64::MAX => Some(FeedPosition {
            transaction_id: t,
            position: p + 1,
        }),
        (t, _) if t < i64::MAX => Some(FeedPosition {
            transaction_id: t + 1,
            position: i64::MIN,
        }),
        _ => None,
    }
}

/// The rows of one page: up to `limit` events after `after` that pass
/// `filter`, in feed order.
///
/// # Errors
/// When the database fails or refuses a value of the filter.
pub(crate) async fn page_rows(
    pool: &PgPool,
    filter: &EventFilter,
    after: FeedPosition,
    limit: i64,
) -> Result<Vec<Envelope>, sqlx::Error> {
    static LIST: std::sync::LazyLock<String> = std::sync::LazyLock::new(list);
    static LIST_SINCE: std::sync::LazyLock<String> = std::sync::LazyLock::new(list_since);
    let Some(from) = successor(after) else {
        return Ok(Vec::new());
    };
    let sql = if filter.since.is_some() {
        LIST_SINCE.as_str()
    } else {
        LIST.as_str()
    };
    bind(sqlx::query_as(sql), filter, from, limit)
        .fetch_all(pool)
        .await
}

fn bind<'q>(
    query: QueryAs<'q, Postgres, Envelope, PgArguments>,
    filter: &'q EventFilter,
    from: FeedPosition,
    limit: i64,
) -> QueryAs<'q, Postgres, Envelope, PgArguments> {
    let literal = filter.subject.as_ref().and_then(SubjectFilter::literal);
    let subject = filter.subject.as_ref().filter(|_| literal.is_none());
    query
        .bind(subject.map(SubjectFilter::sql_like))
        .bind(subject.and_then(regex))
        .bind(filter.aggregate_id.as_deref())
        .bind(filter.correlation_id.as_deref())
        .bind(filter.event_types.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .bind(from.transaction_id)
        .bind(from.position)
        .bind(limit)
        .bind(literal)
}

/// The regular expression that decides after the subject's `LIKE`
/// pattern, or none when the pattern decides alone (a `LIKE` pattern; a
/// subject without wildcards is compared for equality instead). A redundant regular expression would be counted
/// twice by the planner's estimate of the subject's rows, which then looks
/// rare enough to read by the subject index and sort, even with `since`.
fn regex(subject: &SubjectFilter) -> Option<String> {
    Some(subject.sql_regex()).filter(|_| !subject.is_decided_by_like())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_after_a_cursor_is_the_next_one_or_the_next_transactions_first() {
        let at = |transaction_id, position| FeedPosition {
            transaction_id,
            position,
        };
        assert_eq!(successor(at(7, 41)), Some(at(7, 42)));
        assert_eq!(successor(FeedPosition::START), Some(at(0, 1)));
        assert_eq!(successor(at(7, i64::MAX)), Some(at(8, i64::MIN)));
        assert_eq!(successor(at(i64::MAX, i64::MAX)), None);
        assert_eq!(successor(at(-3, -9)), Some(at(-3, -8)));
    }
}
