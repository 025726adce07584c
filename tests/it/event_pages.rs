//! The event log's filtered pages hold exactly the right events, in feed
//! order, however the timestamps are ordered: pages `since` a time start
//! their walk at the timestamps' high-water mark (see
//! `projections/src/event_list.rs`), and rows written out of feed order (a
//! parked event handled later) have no mark and are read apart. Every page
//! is checked against the table itself, filtered and ordered here, with
//! the default scan (every page before the last is full) and with a scan
//! shorter than a sparse filter's gaps (the pages of filters without an
//! index of their own stop short, and following them still gives every
//! match once).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::SubjectFilter;
use hub_tests::feed::migrated_pool;
use hub_tests::rebuild::{live_runners, rebuild_fully, HUB_ID};
use hub_tests::{wait_until, TestDb};
use infrastructure::feed::{consumer_lag, read_after, FeedConsumer, FeedPosition};
use projections::cursor::{decode_event_cursor, encode_event_cursor};
use projections::{EventFilter, EventLogProjection, ReadModels, Rebuildable};
use sqlx::PgPool;
use uuid::Uuid;

/// Events the store is seeded with.
const EVENTS: i64 = 240;
/// Events per page while a filter's pages are followed to the end: a
/// subject pattern's page reads ten pages' worth of rows in feed order before
/// its subjects' own entries, fewer than the log has.
const PAGE: u32 = 10;
/// Rows of the log a page without an index of its own reads at most in
/// the checks of pages bounded by their scan: fewer than a sparse filter's
/// page needs, and more than a page (a page reads at least its size and
/// one more).
const SCAN: u32 = 15;

/// One row of `event_log`, as the checks need it.
#[derive(Clone, Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    transaction_id: i64,
    position: i64,
    timestamp: DateTime<Utc>,
    correlation_id: Option<String>,
    subject: String,
    timestamp_high_water: Option<DateTime<Utc>>,
}

impl Row {
    fn at(&self) -> FeedPosition {
        FeedPosition {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }
}

/// The time of event `i` before disorder: 100 ms apart.
fn base() -> DateTime<Utc> {
    "2025-03-01T10:00:00Z".parse().expect("a time")
}

/// When event `i` is recorded: 100 ms apart, shaken by up to ±300 ms (a
/// fixed pseudo-random jitter), with a stretch recorded an hour early (a
/// clock stepped back), one event a day late (a clock stepped forward
/// once: every mark after it is that day), and pairs recorded at the same
/// microsecond.
fn recorded_at(i: i64) -> DateTime<Utc> {
    let jitter = (i * 7919 % 601) - 300;
    let mut at = base() + chrono::Duration::milliseconds(i * 100 + jitter);
    if (100..120).contains(&i) {
        at -= chrono::Duration::hours(1);
    }
    if i == 170 {
        at += chrono::Duration::days(1);
    }
    if i % 50 == 1 {
        at = recorded_at(i - 1);
    }
    at
}

/// The subject of seeded event `n` after `hub.<id>.` (SQL): six that
/// alternate, a retired one in every tenth of the first 60 events, and two
/// rare ones taking turns in every twentieth (sparser than a pattern's
/// page walks in feed order before it reads its subjects' own entries).
const SUBJECTS: &str = "CASE WHEN n < 60 AND n % 10 = 5 THEN 'legacy.synced' \
                        WHEN n % 20 = 7 THEN 'audit.' || (ARRAY['a','b'])[n / 20 % 2 + 1] \
                        ELSE (ARRAY['deploy','build','test'])[n % 3 + 1] \
                             || '.' || (ARRAY['started','failed'])[n % 2 + 1] END";

/// Seeds the store with integration events `numbers`, one to five per
/// transaction, each with its [`recorded_at`] time moved by `shift`, a
/// subject and one of seven correlation ids (some events without).
async fn seed(pool: &PgPool, numbers: std::ops::Range<i64>, shift: chrono::Duration) {
    seed_subjects(pool, numbers, shift, SUBJECTS).await;
}

/// [`seed`] with the subjects after `hub.<id>.` given by `subjects`, an
/// SQL expression of the event's number `n`.
async fn seed_subjects(
    pool: &PgPool,
    numbers: std::ops::Range<i64>,
    shift: chrono::Duration,
    subjects: &str,
) {
    let mut i = numbers.start;
    while i < numbers.end {
        let size = 1 + (i * 31 % 5);
        let numbers: Vec<i64> = (i..(i + size).min(numbers.end)).collect();
        let times: Vec<DateTime<Utc>> = numbers.iter().map(|&n| recorded_at(n) + shift).collect();
        sqlx::query(&format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                                 payload, metadata, recorded_at) \
             SELECT 'IntegrationEvent', gen_random_uuid()::text, 1, 'IntegrationEventPublished', '1.0', \
                    json_build_object('IntegrationEventPublished', json_build_object( \
                        'subject', 'hub.' || $3 || '.' || {subjects}, \
                        'payload', json_build_object('n', n))), \
                    CASE WHEN n % 11 = 0 THEN '{{}}'::json \
                         ELSE json_build_object('correlation_id', 'corr-' || (n % 7)) END, \
                    at \
             FROM unnest($1::bigint[], $2::timestamptz[]) AS seed(n, at) ORDER BY n",
        ))
        .bind(&numbers)
        .bind(&times)
        .bind(HUB_ID)
        .execute(pool)
        .await
        .expect("seed the store");
        i += size;
    }
}

/// Every row of the log, in feed order.
async fn rows(pool: &PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, transaction_id, position, \"timestamp\", correlation_id, subject, \
                timestamp_high_water \
         FROM event_log ORDER BY transaction_id, position",
    )
    .fetch_all(pool)
    .await
    .expect("read the log")
}

/// Follows `filter`'s pages from `after` to the end, checking that each
/// holds at most a page and that each next cursor is after its events;
/// returns the events in order, and how many pages before the last held
/// less than a page (stopped at their scan).
async fn follow(
    read: &ReadModels,
    filter: &EventFilter,
    after: Option<String>,
) -> (Vec<Uuid>, usize) {
    let mut ids = Vec::new();
    let mut short = 0;
    let mut after = after;
    for _ in 0..=EVENTS {
        let page = read
            .events(filter, PAGE, after.as_deref())
            .await
            .expect("a page");
        assert!(page.items.len() <= PAGE as usize);
        ids.extend(page.items.iter().map(|(_, event)| event.id));
        assert_eq!(page.has_next_page, page.next_cursor().is_some());
        let Some(next) = page.next_cursor() else {
            return (ids, short);
        };
        let position = |cursor: &str| decode_event_cursor(cursor).expect("a cursor");
        if let Some((last, _)) = page.items.last() {
            assert!(
                position(&next) >= position(last),
                "the next page starts after this one"
            );
        }
        if let Some(after) = &after {
            assert!(position(&next) > position(after), "the cursor moves on");
        }
        if page.items.len() < PAGE as usize {
            short += 1;
        }
        after = Some(next);
    }
    panic!("the pages never ended");
}

/// Checks `filter`'s pages from the start and from a few cursors (the
/// first row, the middle, the last row, each filter's own last event, and
/// past the end) against the rows that pass `keep`; returns how many pages
/// before the last held less than a page.
async fn check(
    read: &ReadModels,
    rows: &[Row],
    name: &str,
    filter: EventFilter,
    keep: impl Fn(&Row) -> bool,
) -> usize {
    let mut short = 0;
    let matching: Vec<&Row> = rows.iter().filter(|row| keep(row)).collect();
    let mut cursors = vec![None, Some(rows[0].at()), Some(rows[rows.len() / 2].at())];
    cursors.push(rows.last().map(Row::at));
    cursors.push(matching.last().map(|row| row.at()));
    cursors.push(Some(FeedPosition {
        transaction_id: i64::MAX,
        position: i64::MAX,
    }));
    for cursor in cursors {
        let expected: Vec<Uuid> = matching
            .iter()
            .filter(|row| cursor.is_none_or(|after| row.at() > after))
            .map(|row| row.id)
            .collect();
        let (got, stopped) = follow(read, &filter, cursor.map(encode_event_cursor)).await;
        assert_eq!(got, expected, "{name}, after {cursor:?}");
        short += stopped;
    }
    short
}

/// How many pages before the last held less than a page, by filter.
type Short = BTreeMap<String, usize>;

/// Checks every kind of filter against `rows` (the whole log); returns
/// how many pages before the last held less than a page, by filter.
async fn check_every_filter(read: &ReadModels, rows: &[Row]) -> Short {
    let mut short = Short::new();
    let mut count = |name: &str, pages: usize| *short.entry(name.to_owned()).or_default() += pages;
    let mut times: Vec<DateTime<Utc>> = rows.iter().map(|row| row.timestamp).collect();
    times.sort();
    // Around every twentieth timestamp (exactly at it, and a microsecond
    // on either side), and before and after them all.
    let mut instants = vec![times[0] - chrono::Duration::seconds(1)];
    for at in times.iter().step_by(20) {
        let micro = chrono::Duration::microseconds(1);
        instants.extend([*at - micro, *at, *at + micro]);
    }
    instants.push(times[times.len() - 1] + chrono::Duration::seconds(1));
    for &since in &instants {
        let filter = EventFilter {
            since: Some(since),
            ..EventFilter::default()
        };
        count(
            "since",
            check(read, rows, "since", filter, |row| row.timestamp >= since).await,
        );
    }
    for &until in instants.iter().step_by(3) {
        let filter = EventFilter {
            until: Some(until),
            ..EventFilter::default()
        };
        count(
            "until",
            check(read, rows, "until", filter, |row| row.timestamp < until).await,
        );
        let since = until - chrono::Duration::seconds(5);
        let filter = EventFilter {
            since: Some(since),
            until: Some(until),
            ..EventFilter::default()
        };
        let pages = check(read, rows, "since and until", filter, |row| {
            row.timestamp >= since && row.timestamp < until
        })
        .await;
        count("since and until", pages);
    }
    for n in 0..8 {
        let correlation = format!("corr-{n}");
        let filter = EventFilter {
            correlation_id: Some(correlation.clone()),
            ..EventFilter::default()
        };
        let own = |row: &Row| row.correlation_id.as_deref() == Some(correlation.as_str());
        count(
            "correlation id",
            check(read, rows, "correlation id", filter, own).await,
        );
        let since = instants[instants.len() / 2];
        let filter = EventFilter {
            correlation_id: Some(correlation.clone()),
            since: Some(since),
            ..EventFilter::default()
        };
        let pages = check(read, rows, "correlation id since", filter, |row| {
            own(row) && row.timestamp >= since
        })
        .await;
        count("correlation id since", pages);
    }
    // Every seeded event has the same type.
    for (name, types) in [
        (
            "its type",
            vec!["IntegrationEventPublished", "ProjectCreated"],
        ),
        ("another type", vec!["ProjectCreated"]),
    ] {
        let all = name == "its type";
        let filter = EventFilter {
            event_types: Some(types.iter().map(|&t| t.to_owned()).collect()),
            ..EventFilter::default()
        };
        count(name, check(read, rows, name, filter, |_| all).await);
        let subject = SubjectFilter::parse(&format!("hub.{HUB_ID}.audit.*")).expect("a pattern");
        let filter = EventFilter {
            event_types: Some(types.iter().map(|&t| t.to_owned()).collect()),
            subject: Some(subject.clone()),
            ..EventFilter::default()
        };
        let name = format!("audit.* of {name}");
        let pages = check(read, rows, &name, filter, |row| {
            all && subject.matches(&row.subject)
        })
        .await;
        count(&name, pages);
    }
    short.extend(check_subjects(read, rows, &PATTERNS, None).await);
    short.extend(check_subjects(read, rows, &PATTERNS, Some(instants[instants.len() / 3])).await);
    short
}

/// Subject filters after `hub.<id>.` of the seed's subjects: a subject
/// without wildcards (compared for equality); NATS patterns, dense (most
/// of a page in the rows right after the cursor) and sparse (`audit`: a
/// page's rows far apart, read from each subject's entries); the retired
/// subject by a pattern, whose pages after its last event are empty;
/// `LIKE` patterns, one without a literal prefix; a pattern nothing
/// matches.
const PATTERNS: [&str; 11] = [
    "deploy.failed",
    "*.failed",
    "build.>",
    "*.*",
    "audit.*",
    "audit.%",
    "legacy.*",
    "deploy.%iled",
    "%.started",
    "test.*.x",
    "missing.>",
];

/// Each of `patterns` (after `hub.<id>.`), alone or `since` a time: each
/// page, from every cursor, as the table has it. Returns how many pages
/// before the last held less than a page, by pattern (` since` after it
/// for a page since a time).
async fn check_subjects(
    read: &ReadModels,
    rows: &[Row],
    patterns: &[&str],
    since: Option<DateTime<Utc>>,
) -> Short {
    let mut short = Short::new();
    for pattern in patterns {
        let subject = SubjectFilter::parse(&format!("hub.{HUB_ID}.{pattern}")).expect("a pattern");
        let filter = EventFilter {
            subject: Some(subject.clone()),
            since,
            ..EventFilter::default()
        };
        let pages = check(read, rows, pattern, filter, |row| {
            subject.matches(&row.subject) && since.is_none_or(|since| row.timestamp >= since)
        })
        .await;
        let name = format!("{pattern}{}", if since.is_some() { " since" } else { "" });
        short.insert(name, pages);
    }
    short
}

/// Checks every kind of filter against `rows` with the default scan, where
/// every page before the last is full, and with a scan of [`SCAN`] rows,
/// where the pages of filters without an index of their own stop short
/// and those of filters with one do not.
async fn check_every_filter_and_scan(read: &ReadModels, scanned: &ReadModels, rows: &[Row]) {
    let short = check_every_filter(read, rows).await;
    assert!(
        short.values().all(|&pages| pages == 0),
        "a page before the last is full: {short:?}"
    );
    let short = check_every_filter(scanned, rows).await;
    for walked in [
        "until",
        "since and until",
        "another type",
        "audit.* of its type",
        "audit.* of another type",
        "audit.* since",
        "legacy.* since",
    ] {
        assert!(short[walked] > 0, "{walked} stops at its scan: {short:?}");
    }
    for own in [
        "correlation id",
        "correlation id since",
        "deploy.failed",
        "deploy.failed since",
        "audit.*",
        "legacy.*",
    ] {
        assert_eq!(short[own], 0, "{own} reads its own index: {short:?}");
    }
}

/// No row written in feed order is later than its mark, and the marks of
/// those rows never decrease in feed order.
fn assert_marks_hold(rows: &[Row]) {
    let mut previous: Option<DateTime<Utc>> = None;
    for row in rows {
        let Some(mark) = row.timestamp_high_water else {
            continue;
        };
        assert!(row.timestamp <= mark, "{row:?} is later than its mark");
        assert!(
            previous.is_none_or(|p| p <= mark),
            "the mark went down at {row:?}"
        );
        previous = Some(mark);
    }
}

async fn caught_up(pool: &PgPool) {
    wait_until(
        "the event log caught up",
        Duration::from_secs(30),
        || async { (consumer_lag(pool, EventLogProjection::NAME).await.ok()? == 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn pages_are_exact_with_timestamps_out_of_feed_order_and_rows_written_late() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    seed(&pool, 0..EVENTS, chrono::Duration::zero()).await;
    let read = ReadModels::new(pool.clone());
    let scanned = ReadModels::new(pool.clone()).with_page_scan(SCAN);

    // Written by the live runner, batch by batch.
    let _runners = live_runners(&db);
    caught_up(&pool).await;
    let logged = rows(&pool).await;
    assert_eq!(logged.len() as i64, EVENTS);
    assert!(
        logged.windows(2).any(|w| w[1].timestamp < w[0].timestamp),
        "the seed has timestamps out of feed order"
    );
    assert!(logged.iter().all(|row| row.timestamp_high_water.is_some()));
    assert_marks_hold(&logged);
    check_every_filter_and_scan(&read, &scanned, &logged).await;

    // A log written before the marks existed (migration 0011 leaves its
    // rows without), then events the runner appends after it, recorded as
    // early as the log's first ones.
    sqlx::query("UPDATE event_log SET timestamp_high_water = NULL")
        .execute(&pool)
        .await
        .expect("remove the marks");
    check_every_filter_and_scan(&read, &scanned, &rows(&pool).await).await;
    seed(&pool, EVENTS..EVENTS + 20, chrono::Duration::seconds(-20)).await;
    caught_up(&pool).await;
    let logged = rows(&pool).await;
    assert_eq!(logged.len() as i64, EVENTS + 20);
    assert!(logged[EVENTS as usize..]
        .iter()
        .all(|row| row.timestamp_high_water.is_some()));
    assert_marks_hold(&logged);
    check_every_filter_and_scan(&read, &scanned, &logged).await;

    // Rows written after rows that follow them, as a parked event is when
    // it is handled later: old ones (the first, the one a day late, some in
    // the stretch an hour early) and two with marks; and the last row,
    // which follows every other again when it is written.
    let late: Vec<Uuid> = [0, 3, 57, 104, 111, 170, 199, 238, 243, 250, 259]
        .iter()
        .map(|&i| logged[i].id)
        .collect();
    let stored = {
        let mut conn = pool.acquire().await.expect("a connection");
        read_after(&mut conn, FeedPosition::START, 2 * EVENTS)
            .await
            .expect("read the store")
    };
    sqlx::query("DELETE FROM event_log WHERE id = ANY($1)")
        .bind(&late)
        .execute(&pool)
        .await
        .expect("remove the rows");
    let projection = EventLogProjection::new(HUB_ID);
    for event in stored.iter().filter(|e| late.contains(&e.event_id)) {
        let mut conn = pool.acquire().await.expect("a connection");
        projection
            .handle(&mut conn, std::slice::from_ref(event))
            .await
            .expect("write the row late");
    }
    let logged = rows(&pool).await;
    assert_eq!(logged.len() as i64, EVENTS + 20);
    let unmarked: Vec<Uuid> = logged
        .iter()
        .filter(|row| row.timestamp_high_water.is_none())
        .map(|row| row.id)
        .collect();
    assert_eq!(
        unmarked.len(),
        EVENTS as usize + 2,
        "the rows written late have no mark, like the log's old rows"
    );
    assert!(late[..late.len() - 1]
        .iter()
        .all(|id| unmarked.contains(id)));
    assert!(
        !unmarked.contains(&late[late.len() - 1]),
        "the last row is in order"
    );
    assert_marks_hold(&logged);
    check_every_filter_and_scan(&read, &scanned, &logged).await;

    // A rebuild writes every row in feed order again.
    rebuild_fully(
        &pool,
        &Rebuildable::EventLog {
            hub_id: HUB_ID.to_owned(),
        },
    )
    .await;
    let rebuilt = rows(&pool).await;
    assert_eq!(rebuilt.len() as i64, EVENTS + 20);
    assert!(rebuilt.iter().all(|row| row.timestamp_high_water.is_some()));
    assert_marks_hold(&rebuilt);
    check_every_filter_and_scan(&read, &scanned, &rebuilt).await;
}

#[tokio::test]
async fn interleaved_transactions_record_timestamps_out_of_feed_order_and_since_still_finds_them() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let insert = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                  event_version, payload, metadata) \
                  VALUES ('IntegrationEvent', gen_random_uuid()::text, 1, 'IntegrationEventPublished', \
                          '1.0', json_build_object('IntegrationEventPublished', json_build_object( \
                              'subject', 'hub.' || $1 || '.audit.done', 'payload', '{}'::json)), '{}')";
    // The first transaction gets the lower id and so sorts first in feed
    // order, but the second records its event between the first's two.
    let mut first = pool.begin().await.expect("a transaction");
    sqlx::query(insert)
        .bind(HUB_ID)
        .execute(&mut *first)
        .await
        .expect("the first event");
    let mut second = pool.begin().await.expect("a transaction");
    sqlx::query(insert)
        .bind(HUB_ID)
        .execute(&mut *second)
        .await
        .expect("the second transaction's event");
    second.commit().await.expect("commit the second");
    sqlx::query(insert)
        .bind(HUB_ID)
        .execute(&mut *first)
        .await
        .expect("the first transaction's last event");
    first.commit().await.expect("commit the first");

    let _runners = live_runners(&db);
    caught_up(&pool).await;
    let logged = rows(&pool).await;
    let times: Vec<DateTime<Utc>> = logged.iter().map(|row| row.timestamp).collect();
    assert_eq!(times.len(), 3);
    assert!(
        times[2] < times[1],
        "the second transaction's event sorts last but was recorded before the first's last: {times:?}"
    );
    assert_marks_hold(&logged);
    let read = ReadModels::new(pool.clone());
    for since in [times[0], times[2], times[1]] {
        let filter = EventFilter {
            since: Some(since),
            ..EventFilter::default()
        };
        let expected: Vec<Uuid> = logged
            .iter()
            .filter(|row| row.timestamp >= since)
            .map(|row| row.id)
            .collect();
        assert_eq!(
            follow(&read, &filter, None).await.0,
            expected,
            "since {since}"
        );
    }
    let start = read
        .replay_start_since(times[2])
        .await
        .expect("a replay start");
    assert!(
        start < logged[1].at(),
        "a replay since the second transaction's event starts before the first's last"
    );
}

#[tokio::test]
async fn a_pattern_over_more_subjects_than_a_page_reads_one_by_one_still_pages_exactly() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    // Two families of subjects, each with a rare one (one event in forty)
    // that sorts after all the others: under `hub.<id>.a` 64 subjects, as
    // many as a page reads one by one (`MAX_SUBJECTS`), under `hub.<id>.b`
    // 65, one more, so its pages walk. Cut short, a listing of either
    // would leave out its rare subject.
    let subjects =
        "CASE WHEN n % 20 = 3 THEN (CASE WHEN n % 40 = 3 THEN 'az' ELSE 'bz' END) || '.rare' \
                    WHEN n % 127 < 63 THEN 'a' || lpad((n % 127)::text, 2, '0') || '.ping' \
                    ELSE 'b' || lpad((n % 127 - 63)::text, 2, '0') || '.ping' END";
    let events = 600;
    seed_subjects(&pool, 0..events, chrono::Duration::zero(), subjects).await;
    let _runners = live_runners(&db);
    caught_up(&pool).await;
    let logged = rows(&pool).await;
    assert_eq!(logged.len() as i64, events);
    let under = |prefix: &str| {
        let prefix = format!("hub.{HUB_ID}.{prefix}");
        let distinct: std::collections::BTreeSet<&str> = logged
            .iter()
            .map(|row| row.subject.as_str())
            .filter(|subject| subject.starts_with(&prefix))
            .collect();
        distinct.len()
    };
    assert_eq!((under("a"), under("b")), (64, 65));
    let patterns = [
        "a%.rare", "b%.rare", "*.rare", "a%", "b%", "az.*", "a0%.ping",
    ];
    let read = ReadModels::new(pool.clone());
    let short = check_subjects(&read, &logged, &patterns, None).await;
    assert!(short.values().all(|&pages| pages == 0), "{short:?}");
    // With a scan shorter than the rare subjects' gaps, only the pages
    // that walk stop short: 64 subjects are still read one by one, 65 not.
    let scanned = ReadModels::new(pool.clone()).with_page_scan(SCAN);
    let short = check_subjects(&scanned, &logged, &patterns, None).await;
    assert_eq!(short["a%.rare"], 0, "{short:?}");
    assert!(short["b%.rare"] > 0, "{short:?}");
    assert!(short["*.rare"] > 0, "{short:?}");
}
