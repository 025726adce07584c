//! A page `since` a time: its walk starts at the first row whose
//! high-water mark reaches the time, and the rows without a mark are read
//! apart.
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

use super::{nth, scan, FILTERS};

/// Where the walk of a page with `since` (`$6`, not null) starts: the
/// later of `($8, $9)` and the first row whose high-water mark reaches
/// `since` (`found` is false when no row's does).
const SINCE_WALK: &str = "\
    first AS (
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
        FROM (SELECT 1) AS one LEFT JOIN first ON true)";

/// The rows of a `since` walk.
const SINCE_FROM: &str = "(SELECT found FROM walk)
    AND (transaction_id, position) >= (SELECT transaction_id, position FROM walk)";

/// The rows without a mark from `($8, $9)` to where a `since` page's walk
/// starts (all of them after `($8, $9)` when no row's mark reaches
/// `since`). Few once the log has been written with marks; all of a log
/// written before they existed.
const SINCE_LATE_FROM: &str = "timestamp_high_water IS NULL
    AND (transaction_id, position) >= ($8, $9)
    AND (NOT (SELECT found FROM walk)
         OR (transaction_id, position) < (SELECT transaction_id, position FROM walk))";

/// The matches among the rows of [`SINCE_LATE_FROM`]: `$10` at most, each
/// as a page's event.
fn since_late() -> String {
    format!(
        "SELECT *, true AS matches, false AS scan_end FROM event_log
         WHERE {SINCE_LATE_FROM} AND {FILTERS}
         ORDER BY transaction_id, position
         LIMIT $10"
    )
}

/// A page with `since` (`$6`, not null) that a filter's own index bounds:
/// the walk from [`SINCE_WALK`], and the rows without a mark before it.
pub(super) fn list_since() -> String {
    let late = since_late();
    format!(
        "WITH {SINCE_WALK}
         SELECT * FROM (
             (SELECT *, true AS matches, false AS scan_end FROM event_log
              WHERE {FILTERS} AND {SINCE_FROM}
              ORDER BY transaction_id, position
              LIMIT $10)
             UNION ALL
             ({late})
         ) AS page
         ORDER BY transaction_id, position
         LIMIT $10"
    )
}

/// A page with `since` and without an index of its own: as
/// [`list_since`], each part a [`scan`] of at most `$12` rows. The rows
/// without a mark all come before the walk: when there are `$12` of them
/// (`late_end`), the page is their matches and ends at the last of them;
/// else the walk follows them.
pub(super) fn list_since_scan() -> String {
    let late_end = nth(SINCE_LATE_FROM, "$12");
    let walk_from = format!("NOT EXISTS (SELECT 1 FROM late_end) AND {SINCE_FROM}");
    let late = scan(SINCE_LATE_FROM, "$12", FILTERS, "$10");
    let walk = scan(&walk_from, "$12", FILTERS, "$10");
    format!(
        "WITH {SINCE_WALK},
         late_end AS ({late_end})
         SELECT * FROM (({late}) UNION ALL ({walk})) AS page
         ORDER BY transaction_id, position"
    )
}
