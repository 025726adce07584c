//! The event log's filtered pages in feed order, and why each stays bounded
//! as the log grows.
//!
//! A page is the first `limit` rows in feed order (`transaction_id`,
//! `position`) after a cursor that pass every filter. PostgreSQL walks the
//! feed-order index and filters, or reads a filter's own index and sorts:
//! - a subject without wildcards, compared for equality: its index holds
//!   its rows in feed order (migration 0012), so its page after a cursor
//!   reads its own entries only, even past its last event;
//! - a subject pattern and no other filter: the walk of a few pages' worth
//!   of rows (a dense pattern's page is there, [`window`]), then each
//!   matching subject's own entries in that index ([`list_pattern`]), so a
//!   page past the pattern's last event reads no more than that; with
//!   other filters too, for a pattern that starts with a wildcard, or with
//!   more than [`MAX_SUBJECTS`] subjects under its literal prefix, the
//!   walk;
//! - an aggregate: its index `(aggregate_id, sequence)`, the aggregate's
//!   rows sorted into feed order (or the walk, when they are many and so
//!   near);
//! - a correlation id: its index holds its rows in feed order (migration
//!   0011), so its page after a cursor reads its own entries only, even
//!   past its last event (where a walk would filter the rest of the log);
//! - `since`: the walk would filter every row before the first recorded at
//!   or after the time (half of a 10M-row log for a time in its middle). So
//!   the walk starts where those rows can begin, found by the high-water
//!   mark (below), and the few rows without a mark are read apart.
//!
//! A page without an exact subject, a correlation id or an aggregate (event
//! types, `until`, `since`, a subject pattern beside other filters, one
//! that starts with a wildcard or has more than [`MAX_SUBJECTS`] subjects
//! under its prefix) has no index of its own that bounds it, so its walk is
//! bounded by a scan: it reads at most `scan` rows of the log in feed order
//! (`HUB_EVENTS_PAGE_SCAN_ROWS`; a `since` page as many rows without a mark
//! again, a pattern's page its window first). When those hold less than a
//! page of matches, the page is what they hold, even nothing, and it ends
//! at the last row read ([`Rows::scanned_to`]): the next page starts after
//! it. So only a filter's own rows can make a page long, never the rest of
//! the log, and following the pages still reads every match once, in feed
//! order.
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

use std::sync::LazyLock;

use domain::SubjectFilter;
use infrastructure::feed::FeedPosition;
use infrastructure::nats::Envelope;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgPool, Postgres};

use crate::queries::EventFilter;

/// The rows of one page, and where a page bounded by its scan stopped.
#[derive(Debug)]
pub(crate) struct Rows {
    /// The matching events, in feed order.
    pub events: Vec<Envelope>,
    /// The last row the page's walk read, when it read as many as its
    /// scan allows and found fewer than `limit` events: the next page
    /// starts after it, whether it matched or not. None when the page is
    /// full, the walk reached the end of the log, or the page read a
    /// filter's own index instead.
    pub scanned_to: Option<FeedPosition>,
}

/// One row of a page's statement: an event of the page (`matches`), or
/// the last row of a walk that read all it may (`scan_end`; that row comes
/// again as an event when it matches).
#[derive(sqlx::FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    event: Envelope,
    matches: bool,
    scan_end: bool,
}

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

/// How many rows after the cursor a subject pattern's page walks in feed
/// order, as a multiple of the page's size, before it reads the pattern's
/// subjects' own entries instead (see [`list_pattern`]).
const WINDOW: i64 = 10;

/// The most distinct subjects under a pattern's literal prefix that a page
/// reads one by one; with more, it walks the feed-order index as before.
const MAX_SUBJECTS: i64 = 64;

/// A page without `since` that a filter's own index bounds: from feed
/// position `($8, $9)` on (the one after the cursor), `$10` rows.
///
/// The bound is inclusive on purpose. PostgreSQL estimates a row
/// comparison by its first column alone, so `(transaction_id, position) >
/// (t, p)` counts none of the rows of transaction `t` after `p`: after a
/// cursor in a large transaction it would expect nothing there and walk
/// the feed-order index rather than, say, a correlation id's own entries.
/// `>= (t, p + 1)` selects the same rows and counts all of `t`'s.
fn list() -> String {
    format!(
        "SELECT *, true AS matches, false AS scan_end FROM event_log WHERE {FILTERS}
           AND (transaction_id, position) >= ($8, $9)
         ORDER BY transaction_id, position
         LIMIT $10"
    )
}

/// A walk bounded by its scan: of the first `{scan}` rows in feed order
/// where `{from}` holds, the first `{limit}` that pass `{filters}`; and
/// when those are fewer, the `{scan}`th row, marked as the scan's end (none
/// when fewer rows follow). The walk stops at `{limit}` matches; the end
/// is looked for only when the page is not full, in the feed-order index
/// alone.
fn scan(from: &str, scan: &str, filters: &str, limit: &str) -> String {
    let nth = nth(from, scan);
    format!(
        "WITH found AS MATERIALIZED (
             SELECT *, true AS matches, false AS scan_end FROM (
                 SELECT * FROM event_log WHERE {from}
                 ORDER BY transaction_id, position LIMIT {scan}) AS scanned
             WHERE {filters}
             ORDER BY transaction_id, position LIMIT {limit})
         SELECT * FROM found
         UNION ALL
         SELECT logged.*, false AS matches, true AS scan_end FROM event_log AS logged
         WHERE (SELECT count(*) FROM found) < {limit}
           AND (logged.transaction_id, logged.position) = ({nth})"
    )
}

/// The feed position of the `{scan}`th row in feed order where `{from}`
/// holds: none when fewer rows follow. Read from an index alone.
fn nth(from: &str, scan: &str) -> String {
    format!(
        "SELECT transaction_id, position FROM event_log WHERE {from}
         ORDER BY transaction_id, position OFFSET {scan} - 1 LIMIT 1"
    )
}

/// A page without `since` and without an index of its own: the matches
/// among the `$12` rows from feed position `($8, $9)` on, at most `$10`,
/// and the last of those rows when there are `$12`.
fn list_scan() -> String {
    let scan = scan(
        "(transaction_id, position) >= ($8, $9)",
        "$12",
        FILTERS,
        "$10",
    );
    format!("SELECT * FROM ({scan}) AS page ORDER BY transaction_id, position")
}

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
fn list_since() -> String {
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
fn list_since_scan() -> String {
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

/// The subject condition of a pattern's page: `$1` its `LIKE` pattern,
/// `$2` its regular expression (or null).
const PATTERN: &str = "subject LIKE $1 ESCAPE '\\' AND ($2::text IS NULL OR subject ~ $2)";

/// A subject pattern's matches among the first [`WINDOW`] times `$5` rows
/// after feed position `($3, $4)`, at most `$5`: a dense pattern's whole
/// page, read by the walk of the feed-order index alone.
fn window() -> String {
    format!(
        "SELECT *, true AS matches, false AS scan_end FROM (
             SELECT * FROM event_log WHERE (transaction_id, position) >= ($3, $4)
             ORDER BY transaction_id, position LIMIT {WINDOW} * $5) AS head
         WHERE {PATTERN}
         ORDER BY transaction_id, position LIMIT $5"
    )
}

/// A page of a subject pattern and no other filter whose [`window`] holds
/// less than a page, bounded however far the pattern's next event lies
/// after the cursor (`$1`-`$5` as for the window; `$6`-`$7`: the range of
/// subjects under the pattern's literal prefix, see [`prefix_range`];
/// `$8`: the scan of a walk).
///
/// The window's matches come first; the rest of the page comes from each
/// matching subject's own entries after the window (the subject index
/// holds each subject's rows in feed order): the first `$5` of each, in
/// the index alone, merged and cut to `$5`, then read by feed position.
/// The subjects are found by skipping through the subject index from one
/// distinct subject to the next under the prefix (one lookup each); with
/// more than [`MAX_SUBJECTS`] of them, the walk goes on after the window
/// instead, for at most `$8` rows (the last of them marked when it reads
/// that many). When the window reaches the end of the log (a page at its
/// tail), nothing follows it and the subjects are not looked for. One
/// statement, so one snapshot: the window is read again.
///
/// Each part is exact: the window's matches are the first in feed order
/// up to its end, and after it every matching row of the page is among the
/// first `$5` of its own subject there.
fn list_pattern() -> String {
    let window = window();
    let walk_on = "(SELECT next FROM plan) = 'walk'
        AND (transaction_id, position) > (SELECT transaction_id, position FROM window_end)";
    let walk = scan(walk_on, "$8", PATTERN, "$5");
    format!(
        "WITH RECURSIVE subjects (subject) AS (
             (SELECT subject FROM event_log WHERE subject ~>=~ $6 AND subject ~<~ $7
              ORDER BY subject USING ~<~ LIMIT 1)
             UNION ALL
             SELECT (SELECT next.subject FROM event_log AS next
                     WHERE next.subject ~>~ previous.subject AND next.subject ~<~ $7
                     ORDER BY next.subject USING ~<~ LIMIT 1)
             FROM subjects AS previous WHERE previous.subject IS NOT NULL),
         listed AS (
             SELECT subject FROM subjects WHERE subject IS NOT NULL LIMIT {MAX_SUBJECTS} + 1),
         walked AS ({window}),
         window_end AS (
             SELECT transaction_id, position FROM event_log
             WHERE (transaction_id, position) >= ($3, $4)
             ORDER BY transaction_id, position OFFSET {WINDOW} * $5 - 1 LIMIT 1),
         plan AS (
             SELECT CASE WHEN (SELECT count(*) FROM walked) = $5
                              OR NOT EXISTS (SELECT 1 FROM window_end) THEN 'done'
                         WHEN (SELECT count(*) FROM listed) <= {MAX_SUBJECTS} THEN 'subjects'
                         ELSE 'walk' END AS next),
         after_window AS (
             SELECT entry.transaction_id, entry.position
             FROM (SELECT subject FROM listed WHERE {PATTERN}) AS matching
             CROSS JOIN LATERAL (
                 SELECT transaction_id, position FROM event_log AS own
                 WHERE own.subject = matching.subject
                   AND (transaction_id, position) > (SELECT transaction_id, position FROM window_end)
                 ORDER BY transaction_id, position LIMIT $5) AS entry
             WHERE (SELECT next FROM plan) = 'subjects'
             ORDER BY 1, 2 LIMIT $5)
         SELECT * FROM (
             SELECT * FROM walked
             UNION ALL
             SELECT logged.*, true AS matches, false AS scan_end
             FROM after_window JOIN event_log AS logged
                 ON (logged.transaction_id, logged.position)
                    = (after_window.transaction_id, after_window.position)
             UNION ALL
             ({walk})
         ) AS page
         ORDER BY transaction_id, position"
    )
}

/// The subjects that start with `prefix`, as a range of the subject index
/// (`text_pattern_ops` compares bytes, so code points): from `prefix` up
/// to, not including, `prefix` with its last character raised by one. None
/// for an empty prefix, or one without a character to raise.
fn prefix_range(prefix: &str) -> Option<(String, String)> {
    let mut upper: Vec<char> = prefix.chars().collect();
    while let Some(last) = upper.pop() {
        let raised = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            next => char::from_u32(next),
        };
        if let Some(raised) = raised {
            upper.push(raised);
            return Some((prefix.to_owned(), upper.into_iter().collect()));
        }
    }
    None
}

/// The range of subjects of a page that only a subject pattern filters:
/// such a page reads its subjects' own entries ([`list_pattern`]).
fn pattern_range(filter: &EventFilter) -> Option<(&SubjectFilter, String, String)> {
    let EventFilter {
        subject,
        aggregate_id,
        correlation_id,
        event_types,
        since,
        until,
    } = filter;
    let others = aggregate_id.is_some()
        || correlation_id.is_some()
        || event_types.is_some()
        || since.is_some()
        || until.is_some();
    let pattern = subject
        .as_ref()
        .filter(|s| !others && s.literal().is_none())?;
    let (lower, upper) = prefix_range(&pattern.literal_prefix())?;
    Some((pattern, lower, upper))
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

/// Whether a filter has an index of its own that bounds its page: an
/// exact subject, an aggregate or a correlation id.
fn has_own_index(filter: &EventFilter) -> bool {
    filter
        .subject
        .as_ref()
        .is_some_and(|s| s.literal().is_some())
        || filter.aggregate_id.is_some()
        || filter.correlation_id.is_some()
}

/// The rows of one page: up to `limit` events after `after` that pass
/// `filter`, in feed order. A page without an index of its own reads at
/// most `scan` rows of the log (at least `limit`), and says where it
/// stopped when it read that many.
///
/// # Errors
/// When the database fails or refuses a value of the filter.
pub(crate) async fn page_rows(
    pool: &PgPool,
    filter: &EventFilter,
    after: FeedPosition,
    limit: i64,
    scan: i64,
) -> Result<Rows, sqlx::Error> {
    static LIST: LazyLock<String> = LazyLock::new(list);
    static LIST_SCAN: LazyLock<String> = LazyLock::new(list_scan);
    static LIST_SINCE: LazyLock<String> = LazyLock::new(list_since);
    static LIST_SINCE_SCAN: LazyLock<String> = LazyLock::new(list_since_scan);
    static WINDOW_ONLY: LazyLock<String> = LazyLock::new(window);
    static LIST_PATTERN: LazyLock<String> = LazyLock::new(list_pattern);
    let Some(from) = successor(after) else {
        return Ok(Rows {
            events: Vec::new(),
            scanned_to: None,
        });
    };
    let scan = scan.max(limit);
    let rows: Vec<PageRow> = if let Some((subject, lower, upper)) = pattern_range(filter) {
        let like = subject.sql_like();
        let regex = regex(subject);
        let pattern = |sql| {
            sqlx::query_as(sql)
                .bind(like.clone())
                .bind(regex.clone())
                .bind(from.transaction_id)
                .bind(from.position)
                .bind(limit)
        };
        let head: Vec<PageRow> = pattern(WINDOW_ONLY.as_str()).fetch_all(pool).await?;
        if i64::try_from(head.len()) == Ok(limit) {
            head
        } else {
            pattern(LIST_PATTERN.as_str())
                .bind(lower)
                .bind(upper)
                .bind(scan)
                .fetch_all(pool)
                .await?
        }
    } else {
        let own_index = has_own_index(filter);
        let sql = match (filter.since.is_some(), own_index) {
            (false, true) => LIST.as_str(),
            (false, false) => LIST_SCAN.as_str(),
            (true, true) => LIST_SINCE.as_str(),
            (true, false) => LIST_SINCE_SCAN.as_str(),
        };
        let query = bind(sqlx::query_as(sql), filter, from, limit);
        let query = if own_index { query } else { query.bind(scan) };
        query.fetch_all(pool).await?
    };
    Ok(split(rows, limit))
}

/// A statement's rows as a page: its first `limit` events, and the scan's
/// end when it has one and the page is not full (a full page goes on after
/// its last event: after the scan's end, events past the cut would be
/// skipped).
fn split(rows: Vec<PageRow>, limit: i64) -> Rows {
    let mut page = Rows {
        events: Vec::with_capacity(rows.len()),
        scanned_to: None,
    };
    for row in rows {
        if row.scan_end {
            page.scanned_to = Some(row.event.feed_position());
        }
        if row.matches {
            page.events.push(row.event);
        }
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if page.events.len() >= limit {
        page.events.truncate(limit);
        page.scanned_to = None;
    }
    page
}

fn bind<'q>(
    query: QueryAs<'q, Postgres, PageRow, PgArguments>,
    filter: &'q EventFilter,
    from: FeedPosition,
    limit: i64,
) -> QueryAs<'q, Postgres, PageRow, PgArguments> {
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

    #[test]
    fn a_prefix_range_holds_exactly_the_subjects_that_start_with_it() {
        let range = |prefix: &str| prefix_range(prefix).map(|(_, upper)| upper);
        assert_eq!(range("hub.a.").as_deref(), Some("hub.a/"));
        assert_eq!(range("hub.a.dep").as_deref(), Some("hub.a.deq"));
        assert_eq!(range("hub.\u{D7FF}").as_deref(), Some("hub.\u{E000}"));
        assert_eq!(range("hub.\u{10FFFF}").as_deref(), Some("hub/"));
        assert_eq!(range(""), None);
        assert_eq!(range("\u{10FFFF}"), None);
        let (lower, upper) = prefix_range("hub.a.").expect("a range");
        for inside in ["hub.a.", "hub.a.deploy.failed", "hub.a.\u{10FFFF}"] {
            assert!(
                lower.as_str() <= inside && inside < upper.as_str(),
                "{inside}"
            );
        }
        for outside in ["hub.a", "hub.a/", "hub.b.x", "hub.a-x"] {
            assert!(
                !(lower.as_str() <= outside && outside < upper.as_str()),
                "{outside}"
            );
        }
    }
}
