//! A subject pattern's page: a window of the rows after the cursor in
//! feed order, then each matching subject's own entries, found by
//! skipping through the subject index under the pattern's literal prefix.

use domain::SubjectFilter;

use super::{scan, EventFilter};

/// How many rows after the cursor a subject pattern's page walks in feed
/// order, as a multiple of the page's size, before it reads the pattern's
/// subjects' own entries instead (see [`list_pattern`]).
const WINDOW: i64 = 10;

/// The most distinct subjects under a pattern's literal prefix that a page
/// reads one by one; with more, it walks the feed-order index as before.
pub(super) const MAX_SUBJECTS: i64 = 64;

/// `$2` its regular expression (or null).
const PATTERN: &str = "subject LIKE $1 ESCAPE '\\' AND ($2::text IS NULL OR subject ~ $2)";

/// A subject pattern's matches among the first [`WINDOW`] times `$5` rows
/// after feed position `($3, $4)`, at most `$5`: a dense pattern's whole
/// page, read by the walk of the feed-order index alone.
pub(super) fn window() -> String {
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
pub(super) fn list_pattern() -> String {
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
pub(super) fn pattern_range(filter: &EventFilter) -> Option<(&SubjectFilter, String, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
