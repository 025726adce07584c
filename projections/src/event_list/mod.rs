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
//!   of rows (a dense pattern's page is there, [`pattern::window`]), then each
//!   matching subject's own entries in that index ([`pattern::list_pattern`]), so a
//!   page past the pattern's last event reads no more than that; with
//!   other filters too, for a pattern that starts with a wildcard, or with
//!   more than [`pattern::MAX_SUBJECTS`] subjects under its literal prefix, the
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
//!   mark (`since`), and the few rows without a mark are read apart.
//!
//! A page without an exact subject, a correlation id or an aggregate (event
//! types, `until`, `since`, a subject pattern beside other filters, one
//! that starts with a wildcard or has more than [`pattern::MAX_SUBJECTS`] subjects
//! under its prefix) has no index of its own that bounds it, so its walk is
//! bounded by a scan: it reads at most `scan` rows of the log in feed order
//! (`HUB_EVENTS_PAGE_SCAN_ROWS`; a `since` page as many rows without a mark
//! again, a pattern's page its window first). When those hold less than a
//! page of matches, the page is what they hold, even nothing, and it ends
//! at the last row read ([`Rows::scanned_to`]): the next page starts after
//! it. So only a filter's own rows can make a page long, never the rest of
//! the log, and following the pages still reads every match once, in feed
//! order.

use std::sync::LazyLock;

use domain::SubjectFilter;
use infrastructure::feed::FeedPosition;
use infrastructure::nats::Envelope;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgPool, Postgres};

use crate::queries::EventFilter;
use pattern::{list_pattern, pattern_range, window};
use since::{list_since, list_since_scan};

mod pattern;
mod since;

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

/// The subject condition of a pattern's page: `$1` its `LIKE` pattern,
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
}
