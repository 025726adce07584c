//! `hub events` run as a process against a running hub: `query` in every
//! format, `--since`/`--until` in natural forms against an injected clock,
//! `follow` (live, a `--since` seam under concurrent publishing, a dropped
//! connection), `export` of 50,000 events in bounded memory, and the
//! errors a user meets (no hub, no token, a refused filter).

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hub_tests::cli::{command, csv_records, fails, ids, jsonl, ok, peak_rss, run, Follower};
use hub_tests::graphql::view;
use hub_tests::rest::{self, subject};
use hub_tests::views::RestEvent;
use hub_tests::{wait_until, Proxy, TestDb, TestHub};
use serde::Deserialize;
use serde_json::{json, Value};

/// The payload of the events these tests number: `{"n": <number>}`, with
/// a `note` beside it in some.
#[derive(Deserialize)]
struct Numbered {
    n: i64,
}

/// The `n` of an event these tests numbered.
///
/// # Panics
/// When `event` is not a REST event with a numbered payload.
fn number(event: &Value) -> i64 {
    view::<RestEvent<Numbered>>(event).payload.n
}
use sqlx::PgPool;

/// A hub with a project and three integration events, two of whose payloads
/// need quoting in CSV.
async fn hub_with_events(db: &TestDb) -> (TestHub, Vec<Value>) {
    let hub = TestHub::start(db.url()).await;
    hub.create_project("Listed", "/srv/listed").await;
    for (tail, correlation, payload) in [
        (
            "audit.security.completed",
            "c-1",
            json!({"note": "a, b", "n": 1}),
        ),
        (
            "audit.lint.completed",
            "c:2",
            json!({"note": "say \"hi\"\nbye", "n": 2}),
        ),
        ("deploy.done", "c-3", json!({"n": 3})),
    ] {
        let answer = rest::post(
            &hub,
            &json!({ "subject": subject(&hub, tail), "payload": payload, "correlation_id": correlation }),
        )
        .await;
        assert_eq!(answer.status, reqwest::StatusCode::CREATED, "{answer:?}");
    }
    let all = rest::list(&hub, &[]).await;
    let events = all.body.as_array().expect("a list").clone();
    assert_eq!(events.len(), 4, "{events:?}");
    (hub, events)
}

#[tokio::test]
async fn query_prints_the_matching_events_in_every_format() {
    let db = TestDb::create().await;
    let (hub, events) = hub_with_events(&db).await;
    let url = hub.url();

    // JSON Lines (also what a pipe gets by default) and JSON: the events
    // exactly as the REST API gives them.
    let lines = ok(&url, &["query", "--format", "jsonl"], &[]).await;
    assert_eq!(jsonl(&lines), events);
    assert_eq!(
        ok(&url, &[], &[]).await,
        lines,
        "plain `hub events` on a pipe"
    );
    let array = ok(&url, &["--format", "json"], &[]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&array).unwrap(),
        json!(events)
    );

    // CSV: a header and one record per event, the payload as JSON.
    let csv = ok(&url, &["query", "--format", "csv"], &[]).await;
    let records = csv_records(&csv);
    assert_eq!(
        records[0],
        [
            "id",
            "timestamp",
            "event_type",
            "subject",
            "aggregate_type",
            "aggregate_id",
            "sequence",
            "correlation_id",
            "causation_id",
            "origin",
            "payload"
        ]
    );
    assert_eq!(records.len(), 5);
    for (record, event) in records[1..].iter().zip(&events) {
        assert_eq!(record[0], event["id"].as_str().unwrap());
        let at: DateTime<Utc> = record[1].parse().unwrap();
        assert_eq!(json!(at), event["timestamp"]);
        assert_eq!(record[2], event["event_type"].as_str().unwrap());
        assert_eq!(record[3], event["subject"].as_str().unwrap());
        assert_eq!(record[5], event["aggregate_id"].as_str().unwrap());
        assert_eq!(record[6], event["sequence"].to_string());
        assert_eq!(record[7], event["correlation_id"].as_str().unwrap_or(""));
        assert_eq!(
            serde_json::from_str::<Value>(&record[9]).unwrap(),
            event["origin"]
        );
        assert_eq!(
            serde_json::from_str::<Value>(&record[10]).unwrap(),
            event["payload"]
        );
    }

    // The table: a header, then time, type, subject, aggregate and
    // correlation id per event, aligned.
    let table = ok(&url, &["--format", "table"], &[]).await;
    assert!(
        !table.contains('\x1b'),
        "no colour with NO_COLOR: {table:?}"
    );
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 5, "{table}");
    let header: Vec<&str> = rows[0]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        ["TIME", "TYPE", "SUBJECT", "AGGREGATE", "CORRELATION ID"]
    );
    let column = |row: &str, n: usize| {
        let starts = ["TIME", "TYPE", "SUBJECT", "AGGREGATE", "CORRELATION ID"]
            .map(|h| rows[0].find(h).unwrap());
        let end = starts.get(n + 1).copied().unwrap_or(row.len());
        row[starts[n]..end.min(row.len())].trim_end().to_owned()
    };
    for (row, event) in rows[1..].iter().zip(&events) {
        let at: DateTime<Utc> = event["timestamp"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            column(row, 0),
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        assert_eq!(column(row, 1), event["event_type"].as_str().unwrap());
        assert_eq!(column(row, 2), event["subject"].as_str().unwrap());
        assert_eq!(column(row, 3), event["aggregate_id"].as_str().unwrap());
        assert_eq!(
            column(row, 4),
            event["correlation_id"].as_str().unwrap_or("-")
        );
    }

    // Filters and the limit.
    let only = |args: &'static [&'static str]| {
        let url = url.clone();
        async move { jsonl(&ok(&url, args, &[]).await) }
    };
    assert_eq!(
        ids(&only(&["--type", "ProjectCreated"]).await),
        ids(&events[..1])
    );
    assert_eq!(
        ids(&only(&[
            "--type",
            "ProjectCreated",
            "--type",
            "IntegrationEventPublished"
        ])
        .await),
        ids(&events)
    );
    assert_eq!(
        ids(&only(&["--correlation-id", "c:2"]).await),
        ids(&events[2..3])
    );
    assert_eq!(ids(&only(&["--limit", "2"]).await), ids(&events[..2]));
    let audits = format!("hub.{}.audit.>", hub.hub_id());
    let by_subject = jsonl(&ok(&url, &["--subject", &audits], &[]).await);
    assert_eq!(ids(&by_subject), ids(&events[1..3]));
}

/// Writes integration events into the store, as another process would, with
/// the given `recorded_at` times; waits until the event log holds them.
async fn insert_at(pool: &PgPool, hub: &TestHub, times: &[DateTime<Utc>]) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at) \
         SELECT 'IntegrationEvent', gen_random_uuid()::text, 1, 'IntegrationEventPublished', '1.0', \
                json_build_object('IntegrationEventPublished', json_build_object('subject', $1::text, 'payload', json_build_object('n', n - 1))), \
                json_build_object('correlation_id', 'at-' || (n - 1), 'causation_id', '', 'hub_id', $2::text, 'service', 'cli-test', 'user', 'test'), \
                at \
         FROM unnest($3::timestamptz[]) WITH ORDINALITY AS t(at, n)",
    )
    .bind(subject(hub, "clock.tick"))
    .bind(hub.hub_id())
    .bind(times)
    .execute(pool)
    .await
    .expect("insert events");
    let expected = times.len() as i64;
    wait_until(
        "the event log to hold the events",
        Duration::from_secs(20),
        || async {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
                .fetch_one(pool)
                .await
                .ok()?;
            (count == expected).then_some(())
        },
    )
    .await;
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 time")
}

#[tokio::test]
async fn natural_times_resolve_against_the_injected_clock() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let pool = db.pool().await;
    // Events on either side of each instant the forms below resolve to.
    let times = [
        "2026-11-29T23:59:59Z",     // 0
        "2026-11-30T00:00:00Z",     // 1: last monday, 2026-11-30
        "2026-11-30T13:59:59Z",     // 2
        "2026-11-30T14:00:00Z",     // 3: 2026-11-30 14:00
        "2026-11-30T15:29:59Z",     // 4
        "2026-11-30T15:30:00Z",     // 5: 2d
        "2026-11-30T23:59:59.999Z", // 6
        "2026-12-01T00:00:00Z",     // 7: yesterday
        "2026-12-02T00:00:00Z",     // 8: today
        "2026-12-02T14:29:59Z",     // 9
        "2026-12-02T14:30:00Z",     // 10: 1h ago
        "2026-12-02T15:00:00Z",     // 11: 30m
        "2026-12-02T15:29:59Z",     // 12
    ]
    .map(at);
    insert_at(&pool, &hub, &times).await;
    let url = hub.url();
    // A Wednesday afternoon.
    let now = [("HUB_CLI_NOW", "2026-12-02T15:30:00Z")];
    let numbers = |text: &str| -> Vec<i64> { jsonl(text).iter().map(number).collect() };
    for (since, first) in [
        ("last monday", 1),
        ("2026-11-30", 1),
        ("2026-11-30 14:00", 3),
        ("2026-11-30T15:00:00+01:00", 3),
        ("2d", 5),
        ("2 days ago", 5),
        ("yesterday", 7),
        ("today", 8),
        ("1h ago", 10),
        ("30m", 11),
    ] {
        let out = ok(&url, &["--since", since], &now).await;
        assert_eq!(
            numbers(&out),
            (first..13).collect::<Vec<_>>(),
            "--since {since:?}"
        );
    }
    let out = ok(&url, &["--until", "yesterday"], &now).await;
    assert_eq!(
        numbers(&out),
        (0..7).collect::<Vec<_>>(),
        "--until yesterday"
    );
    let out = ok(&url, &["--since", "last mon", "--until", "today"], &now).await;
    assert_eq!(numbers(&out), (1..8).collect::<Vec<_>>(), "a window");

    // Local times follow TZ: at UTC+1, yesterday began at 23:00 UTC.
    let east = [("HUB_CLI_NOW", "2026-12-02T15:30:00Z"), ("TZ", "Etc/GMT-1")];
    let out = ok(&url, &["--since", "yesterday"], &east).await;
    assert_eq!(
        numbers(&out),
        (6..13).collect::<Vec<_>>(),
        "yesterday at UTC+1"
    );
    let out = ok(&url, &["--since", "2026-11-30 14:00"], &east).await;
    assert_eq!(numbers(&out), (2..13).collect::<Vec<_>>(), "14:00 at UTC+1");

    let refused = fails(&url, &["--since", "the day before"], &now).await;
    assert!(
        refused.contains("--since") && refused.contains("yesterday"),
        "{refused}"
    );
}

#[tokio::test]
async fn errors_are_one_line_with_a_failing_exit_code() {
    // Nothing listens on port 1 (tcpmux, a privileged port no test binds);
    // a port freed by the test itself could be taken by another test's hub.
    let gone = "http://127.0.0.1:1".to_owned();
    let unreachable = fails(&gone, &[], &[]).await;
    assert!(
        unreachable.contains("cannot reach the hub at"),
        "{unreachable}"
    );
    assert!(unreachable.contains(&gone), "{unreachable}");
    let export_file =
        std::env::temp_dir().join(format!("cli-events-{}.jsonl", uuid::Uuid::new_v4()));
    let export = fails(&gone, &["export", "-o", export_file.to_str().unwrap()], &[]).await;
    assert!(export.contains("cannot reach the hub"), "{export}");
    let _ = std::fs::remove_file(&export_file);
    let follow = fails(&gone, &["follow"], &[]).await;
    assert!(follow.contains("cannot reach the hub"), "{follow}");

    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some("s3cret-token".to_owned().into());
    let hub = TestHub::start_with(config).await;
    let url = hub.url();
    for args in [&[][..], &["follow"][..]] {
        let missing = fails(&url, args, &[]).await;
        assert!(
            missing.contains("needs its API token: set HUB_API_TOKEN"),
            "{missing}"
        );
        let empty = fails(&url, args, &[("HUB_API_TOKEN", "")]).await;
        assert!(
            empty.contains("needs its API token"),
            "an empty token is none: {empty}"
        );
        let wrong = fails(&url, args, &[("HUB_API_TOKEN", "guess")]).await;
        assert!(wrong.contains("refused the API token"), "{wrong}");
        assert!(!wrong.contains("guess"), "the token is not shown: {wrong}");
    }
    let token = [("HUB_API_TOKEN", "s3cret-token")];
    assert_eq!(ok(&url, &["--format", "json"], &token).await, "[\n]\n");

    // A filter the hub refuses: its REST error, in one line.
    let refused = fails(&url, &["--subject", "hub..x"], &token).await;
    assert!(
        refused.contains("the hub refused the request (HTTP 422, INVALID_INPUT): subject:"),
        "{refused}"
    );
}

/// The `n` of each event of `subject` (the writer's events).
fn sequence_of(events: &[Value], subject: &str) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e["subject"] == subject)
        .map(number)
        .collect()
}

/// Publishes probes until `follower` prints one: the stream is then live.
async fn wait_live(hub: &TestHub, follower: &Follower) {
    let probe = subject(hub, "probe.ping");
    wait_until(
        "the follower to see a probe",
        Duration::from_secs(20),
        || async {
            if follower.events().iter().any(|e| e["subject"] == probe) {
                return Some(());
            }
            rest::publish(hub, &probe, json!({})).await;
            None
        },
    )
    .await;
}

#[tokio::test]
async fn follow_prints_published_events_until_ctrl_c_then_the_count() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let follower = Follower::start(
        &hub.url(),
        &["--subject", &format!("hub.{}.>", hub.hub_id())],
    )
    .await;
    wait_live(&hub, &follower).await;
    let tail = subject(&hub, "deploy.done");
    for n in 0..3 {
        rest::publish(&hub, &tail, json!({"n": n})).await;
    }
    follower
        .wait_for("the last event", |e| e["subject"] == tail && number(e) == 2)
        .await;
    let (events, count) = follower.interrupt().await;
    assert_eq!(sequence_of(&events, &tail), [0, 1, 2]);
    assert_eq!(count, format!("{} events", events.len()));
    let listed = rest::list(&hub, &[("subject", tail.as_str())]).await;
    let printed: Vec<&Value> = events.iter().filter(|e| e["subject"] == tail).collect();
    assert_eq!(
        printed,
        listed.body.as_array().unwrap().iter().collect::<Vec<_>>(),
        "the events as the REST API shows them"
    );
}

/// Publishes `count` events numbered from 0 on `subject`, one after the
/// other (each acknowledged before the next).
fn writer(hub: &TestHub, subject: String, count: i64) -> tokio::task::JoinHandle<()> {
    let (url, http) = (hub.url(), hub.http().clone());
    tokio::spawn(async move {
        for n in 0..count {
            let answer = http
                .post(format!("{url}/api/events"))
                .json(&json!({ "subject": subject, "payload": {"n": n} }))
                .send()
                .await
                .expect("publish");
            assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
        }
    })
}

async fn published(hub: &TestHub, subject: &str) -> i64 {
    let page = rest::list(hub, &[("subject", subject), ("limit", "1000")]).await;
    page.body.as_array().map_or(0, |a| a.len() as i64)
}

#[tokio::test]
async fn follow_since_replays_the_past_then_goes_live_with_no_gap_or_duplicate() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let tick = subject(&hub, "seam.tick");
    let total = 300;
    let writing = writer(&hub, tick.clone(), total);
    // Start following while the writer is busy: the replay ends and the
    // live stream begins while events keep coming.
    wait_until("a third of the events", Duration::from_secs(30), || async {
        (published(&hub, &tick).await >= total / 3).then_some(())
    })
    .await;
    let follower = Follower::start(&hub.url(), &["--subject", &tick, "--since", "5m"]).await;
    writing.await.expect("the writer");
    follower
        .wait_for("the last event", |e| number(e) == total - 1)
        .await;
    let (events, count) = follower.interrupt().await;
    assert_eq!(sequence_of(&events, &tick), (0..total).collect::<Vec<_>>());
    assert_eq!(count, format!("{total} events"));
}

#[tokio::test]
async fn follow_resumes_after_a_dropped_connection_without_losing_or_doubling() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let proxy = Proxy::start(hub.url().trim_start_matches("http://").parse().unwrap()).await;
    let through = format!("http://{}", proxy.addr());
    let follower =
        Follower::start(&through, &["--subject", &format!("hub.{}.>", hub.hub_id())]).await;
    wait_live(&hub, &follower).await;
    let tick = subject(&hub, "resume.tick");
    let total = 200;
    let writing = writer(&hub, tick.clone(), total);
    follower
        .wait_for("a quarter of the events", |e| {
            e["subject"] == tick && number(e) >= total / 4
        })
        .await;
    proxy.cut();
    wait_until(
        "half the events published",
        Duration::from_secs(30),
        || async { (published(&hub, &tick).await >= total / 2).then_some(()) },
    )
    .await;
    proxy.restore();
    writing.await.expect("the writer");
    follower
        .wait_for("the last event", |e| {
            e["subject"] == tick && number(e) == total - 1
        })
        .await;
    let stderr = follower.output.text();
    let (events, _) = follower.interrupt().await;
    assert_eq!(sequence_of(&events, &tick), (0..total).collect::<Vec<_>>());
    assert!(stderr.contains("reconnecting"), "{stderr}");
    let ids = ids(&events);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no event printed twice");
}

/// Most resident memory the export below may use, in KiB. Measured on the
/// debug build: about 20 MiB for `hub events --limit 1`, about 31 MiB for
/// the export page by page, about 170 MiB when it holds all 50,000 events.
const EXPORT_RSS_LIMIT_KIB: i64 = 40 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_50_000_events_exactly_once_in_bounded_memory() {
    const TOTAL: i64 = 50_000;
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let pool = db.pool().await;
    // One statement: events a millisecond apart from midnight, ~1 KiB each.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at) \
         SELECT 'IntegrationEvent', gen_random_uuid()::text, 1, 'IntegrationEventPublished', '1.0', \
                json_build_object('IntegrationEventPublished', json_build_object('subject', $1::text, \
                    'payload', json_build_object('n', n, 'text', repeat('x', 1000)))), \
                json_build_object('correlation_id', 'export-' || n, 'causation_id', '', 'hub_id', $2::text, 'service', 'cli-test', 'user', 'test'), \
                '2026-11-30T00:00:00Z'::timestamptz + n * interval '1 millisecond' \
         FROM generate_series(0, $3 - 1) AS n",
    )
    .bind(subject(&hub, "export.item"))
    .bind(hub.hub_id())
    .bind(TOTAL)
    .execute(&pool)
    .await
    .expect("insert 50,000 events");
    wait_until(
        "the event log to hold 50,000 events",
        Duration::from_secs(120),
        || async {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
                .fetch_one(&pool)
                .await
                .ok()?;
            (count == TOTAL).then_some(())
        },
    )
    .await;
    let dir = std::env::temp_dir().join(format!("cli-events-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("all.jsonl");

    let export = command(&hub.url(), &["export", "-o", file.to_str().unwrap()], &[])
        .await
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hub events export");
    let (code, peak_kib, summary) = peak_rss(export, Duration::from_secs(120)).await;
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        summary
            .trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .split(" in ")
            .next(),
        Some(format!("exported {TOTAL} events").as_str()),
        "{summary}"
    );
    assert!(
        peak_kib < EXPORT_RSS_LIMIT_KIB,
        "the export peaked at {peak_kib} KiB (limit {EXPORT_RSS_LIMIT_KIB} KiB)"
    );
    eprintln!("export of {TOTAL} events: peak RSS {peak_kib} KiB");

    let text = std::fs::read_to_string(&file).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut numbers = Vec::with_capacity(TOTAL as usize);
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).expect("a JSON line");
        assert!(
            seen.insert(event["id"].as_str().unwrap().to_owned()),
            "{line}"
        );
        numbers.push(number(&event));
    }
    assert_eq!(
        numbers,
        (0..TOTAL).collect::<Vec<_>>(),
        "every event once, in order"
    );
    drop(text);

    // A range, as CSV: ten seconds of events.
    let csv = dir.join("range.csv");
    let args = [
        "export",
        "--since",
        "2026-11-30T00:00:10Z",
        "--until",
        "2026-11-30 00:00:20",
        "-o",
        csv.to_str().unwrap(),
    ];
    let ran = run(&hub.url(), &args, &[]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let records = csv_records(&std::fs::read_to_string(&csv).unwrap());
    assert_eq!(records[0][0], "id");
    let numbers: Vec<i64> = records[1..]
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r[10]).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(numbers, (10_000..20_000).collect::<Vec<_>>());

    // query pages through too.
    let out = ok(&hub.url(), &["--limit", "1500"], &[]).await;
    let numbers: Vec<i64> = jsonl(&out).iter().map(number).collect();
    assert_eq!(numbers, (0..1500).collect::<Vec<_>>());

    // `| head -1`: the reader goes away after one line.
    let mut all = command(&hub.url(), &[], &[])
        .await
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hub events");
    let mut first = String::new();
    let mut stdout = tokio::io::BufReader::new(all.stdout.take().expect("stdout"));
    tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut first)
        .await
        .expect("read a line");
    assert_eq!(number(&jsonl(&first)[0]), 0);
    drop(stdout);
    let ended = tokio::time::timeout(Duration::from_secs(60), all.wait_with_output())
        .await
        .expect("hub events ends when its reader is gone")
        .expect("wait for hub events");
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(ended.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "", "a closed pipe is not an error");
    let _ = std::fs::remove_dir_all(&dir);
}
