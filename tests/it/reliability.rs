//! The reliability suite: real `hub` processes under a steady command load
//! while the hub is killed with `SIGKILL`, NATS goes away, PostgreSQL is
//! restarted, or the hub running the feed consumers dies beside another.
//! After each scenario the store, the JetStream stream and the read models
//! must agree: every acknowledged command is in the store, and every store
//! event is in the stream, `event_log` and `projects` exactly once, per
//! aggregate in order (see `hub_tests::reliability`).
//!
//! Quick by default (3 crash cycles). Full mode:
//! `HUB_RELIABILITY_CYCLES=50 cargo test -p hub-tests --test it reliability:: -- --nocapture`.
//! `HUB_RELIABILITY_SEED` replays the random delays of a printed run.

use std::time::{Duration, Instant};

use hub_tests::hub::nats_url;
use hub_tests::jetstream::{context, read_stream, DeleteStreamOnDrop};
use hub_tests::reliability::{
    cycles, hub_id, seed, wait_for_agreement, Agreement, Attempt, HubProcess, HubSpec, Kind,
    Ledger, Load, Outcome, Rng,
};
use hub_tests::{wait_until, NatsServer, PgServer, TestDb, TestHub};
use serde_json::Value;
use sqlx::PgPool;

/// Concurrent GraphQL clients in each scenario.
const CLIENTS: usize = 3;

/// How long the consumers may take to catch up once the load stops (NATS
/// and the feed runners reconnect with backoffs of a few seconds).
const CATCH_UP: Duration = Duration::from_secs(90);

/// How long a request may take while PostgreSQL is down, and how long the
/// surviving hub may take to run every consumer after the other died.
const FIVE_SECONDS: Duration = Duration::from_secs(5);

/// Generous bound for "the load makes progress" waits.
const PROGRESS: Duration = Duration::from_secs(60);

/// Prints a scenario's figures (shown with `--nocapture`).
fn report(
    scenario: &str,
    cycles: u32,
    seed: u64,
    ledger: &Ledger,
    agreement: &Agreement,
    took: Duration,
) {
    let mut tally: Vec<_> = ledger.tally().into_iter().collect();
    tally.sort();
    println!(
        "reliability {scenario}: {cycles} cycle(s), {} commands sent ({}), {} | {:.1} s | seed {seed}",
        ledger.attempts.len(),
        tally
            .iter()
            .map(|(outcome, n)| format!("{outcome} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        agreement.summary(),
        took.as_secs_f64(),
    );
}

/// The mean of `durations` (zero when empty).
fn mean(durations: &[Duration]) -> Duration {
    let total: Duration = durations.iter().sum();
    total / u32::try_from(durations.len().max(1)).unwrap_or(u32::MAX)
}

/// Checks what every scenario promises about the answers: no 5xx.
fn assert_no_server_errors(scenario: &str, ledger: &Ledger) {
    let errors = ledger.server_errors();
    assert!(
        errors.is_empty(),
        "{scenario}: {} requests got a 5xx, e.g. {:?}",
        errors.len(),
        errors.first()
    );
}

/// Interrupted orchestration requests (failed as interrupted after a crash).
async fn interrupted(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orchestration_requests WHERE outcome = 'INTERRUPTED'")
        .fetch_one(pool)
        .await
        .expect("count interrupted requests")
}

/// Seconds from each start or stop request to the project's next event (its
/// completion or failure), as the store recorded them: median and maximum.
async fn completion_delays(pool: &PgPool) -> (f64, f64) {
    sqlx::query_as(
        "SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY d), 0)::float8, \
                coalesce(max(d), 0)::float8 \
         FROM (SELECT extract(epoch FROM c.recorded_at - r.recorded_at) AS d \
               FROM events r JOIN events c \
                 ON c.aggregate_id = r.aggregate_id AND c.sequence = r.sequence + 1 \
               WHERE r.event_type IN ('ProjectStartRequested', 'ProjectStopRequested')) AS delays",
    )
    .fetch_one(pool)
    .await
    .expect("measure completion delays")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commands_survive_repeated_kill_9_of_the_hub_and_every_source_agrees() {
    let (cycles, seed) = (cycles(), seed());
    let mut rng = Rng::new(seed);
    let began = Instant::now();
    let db = TestDb::create().await;
    let nats = nats_url();
    let mut spec = HubSpec::new(db.url(), &nats, &hub_id("crash"));
    // A duplicate window shorter than a restart: a batch published but not
    // checkpointed before a kill is not de-duplicated by JetStream when it is
    // published again; only the relay's reconciling keeps it from doubling.
    spec.env
        .push(("HUB_NATS_DUPLICATE_WINDOW_SECS".into(), "1".into()));
    let _stream = DeleteStreamOnDrop {
        url: nats.clone(),
        stream: spec.stream(),
    };
    let mut hub = HubProcess::start(spec.clone()).await;
    let load = Load::start(vec![hub.endpoint()], CLIENTS, "crash", &mut rng);
    let mut crashed_while_starting = 0;

    for _ in 0..cycles {
        // Kill under load: after the restarted hub acknowledged something,
        // at a random moment.
        load.wait_for_acks(1, PROGRESS).await;
        tokio::time::sleep(rng.between(Duration::ZERO, Duration::from_millis(1200))).await;
        hub.kill().await;
        // Down for a random while (requests in flight at the kill got
        // connection errors; the clients hold off until a hub serves again).
        tokio::time::sleep(rng.between(Duration::ZERO, Duration::from_millis(300))).await;
        // Now and then the restarted hub dies again while it starts up.
        if rng.below(4) == 0 {
            crashed_while_starting += 1;
            hub.crash_while_starting(rng.between(Duration::ZERO, Duration::from_millis(120)))
                .await;
        }
        hub.restart().await;
    }
    load.wait_for_acks(CLIENTS, PROGRESS).await;
    let ledger = load.finish().await;

    let pool = db.pool().await;
    let agreement = wait_for_agreement(&pool, &nats, &spec.stream(), &ledger, CATCH_UP).await;
    report("crash", cycles, seed, &ledger, &agreement, began.elapsed());
    println!(
        "reliability crash: {} hub starts ({crashed_while_starting} killed again while starting), \
         {} interrupted orchestration requests failed as interrupted; start to serving: mean {:.2} s, max {:.2} s",
        hub.starts(),
        interrupted(&pool).await,
        mean(hub.startups()).as_secs_f64(),
        hub.startups().iter().max().copied().unwrap_or_default().as_secs_f64(),
    );
    let (median, longest) = completion_delays(&pool).await;
    println!(
        "reliability crash: request to completion: median {median:.3} s, longest {longest:.2} s"
    );
    agreement.assert_holds("crash");
    let window = context(&nats)
        .await
        .get_stream(spec.stream())
        .await
        .expect("the stream")
        .info()
        .await
        .expect("stream info")
        .config
        .duplicate_window;
    assert_eq!(
        window,
        Duration::from_secs(1),
        "the short duplicate window is in force"
    );
    assert_no_server_errors("crash", &ledger);
    assert!(
        ledger.acked_count() > cycles as usize,
        "the load made progress"
    );
    assert!(hub.is_running(), "the last hub still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_accepted_while_nats_is_down_and_the_stream_catches_up_after() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let began = Instant::now();
    let mut nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let mut spec = HubSpec::new(db.url(), &nats.url(), &hub_id("nats"));
    // As in the crash scenario: JetStream's de-duplication does not hide a
    // batch published twice across the outage.
    spec.env
        .push(("HUB_NATS_DUPLICATE_WINDOW_SECS".into(), "1".into()));
    let hub = HubProcess::start(spec.clone()).await;
    let load = Load::start(vec![hub.endpoint()], CLIENTS, "nats", &mut rng);
    load.wait_for_acks(5, PROGRESS).await;

    nats.stop();
    let down = Instant::now();
    wait_until("the hub to see NATS gone", PROGRESS, || async {
        let health = hub.health().await?;
        (health["nats"]["connected"] == false).then_some(())
    })
    .await;
    // The store is the outbox: commands keep being acknowledged, and the
    // relay falls behind.
    load.wait_for_acks(20, PROGRESS).await;
    wait_until("the relay to fall behind", PROGRESS, || async {
        let health = hub.health().await?;
        (health["relay_lag"].as_i64() > Some(0)).then_some(())
    })
    .await;
    // Down for a random while longer; in full mode, past the relay's 10 s
    // wait for publish acknowledgements, so its batches fail and are retried.
    let (low, high) = if cycles() > 3 {
        (12_000, 16_000)
    } else {
        (500, 2_500)
    };
    tokio::time::sleep(rng.between(Duration::from_millis(low), Duration::from_millis(high))).await;
    let up = Instant::now();
    nats.restart().await;
    load.wait_for_acks(5, PROGRESS).await;
    let ledger = load.finish().await;

    let acked_while_down = ledger
        .acked()
        .filter(|attempt| attempt.within(down, up))
        .count();
    let pool = db.pool().await;
    let agreement = wait_for_agreement(&pool, &nats.url(), &spec.stream(), &ledger, CATCH_UP).await;
    report("nats-outage", 1, seed, &ledger, &agreement, began.elapsed());
    println!(
        "reliability nats-outage: NATS down {:.1} s, {acked_while_down} commands acknowledged meanwhile",
        (up - down).as_secs_f64()
    );
    agreement.assert_holds("nats-outage");
    assert_no_server_errors("nats-outage", &ledger);
    assert!(
        acked_while_down >= 20,
        "commands were acknowledged while NATS was down: {acked_while_down}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_fails_requests_fast_and_the_same_hub_recovers() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let began = Instant::now();
    let mut pg = PgServer::start().await;
    let database_url = pg.create_database("hub").await;
    let nats = nats_url();
    let spec = HubSpec::new(&database_url, &nats, &hub_id("pg"));
    let _stream = DeleteStreamOnDrop {
        url: nats.clone(),
        stream: spec.stream(),
    };
    let mut hub = HubProcess::start(spec.clone()).await;
    let load = Load::start(vec![hub.endpoint()], CLIENTS, "pg", &mut rng);
    load.wait_for_acks(5, PROGRESS).await;

    pg.stop().await;
    let down = Instant::now();
    // Down until the clients have had answers from the outage: as many as
    // there are clients (four times as many in full mode).
    let wanted = if cycles() > 3 { 4 * CLIENTS } else { CLIENTS };
    wait_until("requests answered during the outage", PROGRESS, || async {
        let answered = load
            .snapshot()
            .attempts
            .iter()
            .filter(|attempt| attempt.started >= down)
            .count();
        (answered >= wanted).then_some(())
    })
    .await;
    let up = Instant::now();
    pg.start_again().await;
    let back = Instant::now();
    // The same process recovers: new commands are acknowledged.
    load.wait_for_acks(10, PROGRESS).await;
    let ledger = load.finish().await;

    let during: Vec<_> = ledger
        .attempts
        .iter()
        .filter(|attempt| attempt.started >= down && attempt.started < up)
        .collect();
    // From PostgreSQL accepting connections again to the first
    // acknowledgement: the pool reconnects, and the `projects` feed must run
    // again before a mutation can answer with its own write.
    let recovered_after = ledger
        .acked()
        .filter(|attempt| attempt.finished >= back)
        .map(|attempt| attempt.finished - back)
        .min()
        .expect("commands were acknowledged after the restart");
    let slowest_overall = ledger
        .attempts
        .iter()
        .map(|attempt| attempt.latency())
        .max()
        .unwrap_or_default();
    let slowest = during
        .iter()
        .map(|attempt| attempt.latency())
        .max()
        .unwrap_or_default();
    let pool = PgPool::connect(&database_url)
        .await
        .expect("connect to the private cluster");
    let agreement = wait_for_agreement(&pool, &nats, &spec.stream(), &ledger, CATCH_UP).await;
    report(
        "postgres-restart",
        1,
        seed,
        &ledger,
        &agreement,
        began.elapsed(),
    );
    println!(
        "reliability postgres-restart: PostgreSQL down {:.1} s, {} requests made meanwhile, slowest {:.2} s; \
         first command acknowledged {:.2} s after it was back; slowest request of the run {:.2} s",
        (up - down).as_secs_f64(),
        during.len(),
        slowest.as_secs_f64(),
        recovered_after.as_secs_f64(),
        slowest_overall.as_secs_f64()
    );

    assert!(
        during.len() >= wanted,
        "requests were made during the outage"
    );
    for attempt in &during {
        assert!(
            attempt.latency() < FIVE_SECONDS,
            "a request during the outage took {:?}: {attempt:?}",
            attempt.latency()
        );
        if attempt.finished < up {
            assert_eq!(
                attempt.outcome,
                Outcome::Refused {
                    code: "UNAVAILABLE".into()
                },
                "a request answered during the outage: {attempt:?}"
            );
        }
    }
    // A hub whose feeds wait out a long reconnect backoff answers the
    // mutations it commits meanwhile with UNAVAILABLE (read-your-writes
    // times out after 5 s) and leaves starts and stops pending.
    assert!(
        recovered_after < FIVE_SECONDS,
        "the first command was acknowledged {recovered_after:?} after PostgreSQL was back"
    );
    agreement.assert_holds("postgres-restart");
    assert_no_server_errors("postgres-restart", &ledger);
    assert_eq!(hub.starts(), 1, "the hub was never restarted");
    assert!(hub.is_running(), "the hub survived the outage");
    drop(pool);
    hub.kill().await;
}

/// The feed consumers `hub` runs, by name, as its `/health` says.
async fn consumers(hub: &HubProcess) -> Option<Vec<(String, bool)>> {
    let health: Value = hub.health().await?;
    let consumers = health["consumers"].as_object()?;
    Some(
        consumers
            .iter()
            .map(|(name, state)| (name.clone(), state["active_here"] == true))
            .collect(),
    )
}

/// Whether `hub` runs every consumer in `names`.
async fn runs_all(hub: &HubProcess, names: &[String]) -> Option<()> {
    let consumers = consumers(hub).await?;
    let all = names.iter().all(|name| {
        consumers
            .iter()
            .any(|(running, active)| running == name && *active)
    });
    all.then_some(())
}

/// Whether `hub` runs none of the consumers.
async fn stands_by(hub: &HubProcess) -> bool {
    consumers(hub)
        .await
        .is_some_and(|consumers| consumers.iter().all(|(_, active)| !active))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_hub_running_the_consumers_dies_the_other_takes_them_all_over_within_five_seconds()
{
    let (cycles, seed) = (cycles(), seed());
    let mut rng = Rng::new(seed);
    let began = Instant::now();
    let db = TestDb::create().await;
    let nats = nats_url();
    let spec = HubSpec::new(db.url(), &nats, &hub_id("failover"));
    let _stream = DeleteStreamOnDrop {
        url: nats.clone(),
        stream: spec.stream(),
    };
    let first = HubProcess::start(spec.clone()).await;
    let names = wait_until("the first hub to run every consumer", PROGRESS, || async {
        let consumers = consumers(&first).await?;
        let names: Vec<String> = consumers.iter().map(|(name, _)| name.clone()).collect();
        (!consumers.is_empty() && consumers.iter().all(|(_, active)| *active)).then_some(names)
    })
    .await;
    let second = HubProcess::start(spec.clone()).await;
    assert!(
        stands_by(&second).await,
        "the second hub stands by while the first runs the consumers"
    );
    let mut hubs = [first, second];
    let load = Load::start(
        hubs.iter().map(HubProcess::endpoint).collect(),
        CLIENTS,
        "failover",
        &mut rng,
    );

    // Each cycle kills the hub running the consumers; the other must take
    // them all over, and the killed one comes back as the standby.
    let (mut slowest, mut acked_after_kills) = (Duration::ZERO, 0);
    for _ in 0..cycles {
        load.wait_for_acks(5, PROGRESS).await;
        let active = wait_until("one hub to run every consumer", PROGRESS, || async {
            for (index, hub) in hubs.iter().enumerate() {
                if runs_all(hub, &names).await.is_some() {
                    return Some(index);
                }
            }
            None
        })
        .await;
        tokio::time::sleep(rng.between(Duration::ZERO, Duration::from_millis(500))).await;
        let killed = Instant::now();
        hubs[active].kill().await;
        let acked_before = load.acked_count();
        let survivor = 1 - active;
        wait_until(
            "the surviving hub to run every consumer",
            FIVE_SECONDS.saturating_sub(killed.elapsed()),
            || runs_all(&hubs[survivor], &names),
        )
        .await;
        slowest = slowest.max(killed.elapsed());
        // Commands go on through the survivor.
        load.wait_for_acks(5, PROGRESS).await;
        acked_after_kills += load.acked_count() - acked_before;
        hubs[active].restart().await;
        assert!(
            stands_by(&hubs[active]).await,
            "the restarted hub stands by while the survivor runs the consumers"
        );
    }
    let ledger = load.finish().await;

    let pool = db.pool().await;
    let agreement = wait_for_agreement(&pool, &nats, &spec.stream(), &ledger, CATCH_UP).await;
    report(
        "failover",
        cycles,
        seed,
        &ledger,
        &agreement,
        began.elapsed(),
    );
    println!(
        "reliability failover: {} consumers ({}) taken over each time, slowest {:.2} s after the kill; \
         {acked_after_kills} commands acknowledged by survivors",
        names.len(),
        names.join(", "),
        slowest.as_secs_f64(),
    );
    agreement.assert_holds("failover");
    assert_no_server_errors("failover", &ledger);
    assert!(slowest < FIVE_SECONDS, "took over after {slowest:?}");
}

/// An acknowledgement the agreement check is given but the store never saw.
fn phantom_ack(project_id: &str) -> Attempt {
    let now = Instant::now();
    Attempt {
        client: 0,
        kind: Kind::Start,
        correlation_id: "never-sent".into(),
        target: Some(project_id.to_owned()),
        started: now,
        finished: now,
        http_status: Some(200),
        outcome: Outcome::Acked {
            project_id: project_id.to_owned(),
            version: 2,
            status: "STARTING".into(),
        },
    }
}

#[tokio::test]
async fn the_agreement_check_reports_lost_duplicated_and_stale_records() {
    let db = TestDb::create().await;
    let nats = nats_url();
    let mut hub = TestHub::start(db.url()).await;
    let stream = hub.stream_name();
    let _stream = DeleteStreamOnDrop {
        url: nats.clone(),
        stream: stream.clone(),
    };
    hub.keep_stream();
    let first = hub.create_project("Kept", "/srv/kept").await;
    let second = hub.create_project("Tampered", "/srv/tampered").await;
    let pool = db.pool().await;
    let clean = wait_for_agreement(&pool, &nats, &stream, &Ledger::default(), CATCH_UP).await;
    clean.assert_holds("before tampering");
    assert_eq!(
        (
            clean.store_events,
            clean.stream_events,
            clean.event_log_rows
        ),
        (2, 2, 2)
    );
    hub.stop().await;

    // A lost event_log row, a stale projects row, and one event published
    // twice (under another message id, which JetStream cannot de-duplicate).
    sqlx::query("DELETE FROM event_log WHERE aggregate_id = $1")
        .bind(&first)
        .execute(&pool)
        .await
        .expect("delete an event_log row");
    sqlx::query("UPDATE projects SET version = 0 WHERE id::text = $1")
        .bind(&second)
        .execute(&pool)
        .await
        .expect("make a projects row stale");
    let js = context(&nats).await;
    let original = read_stream(&js, &stream).await.remove(0);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "another-id");
    headers.insert(
        infrastructure::nats::FEED_POSITION_HEADER,
        original.feed_position.as_deref().unwrap_or_default(),
    );
    js.publish_with_headers(
        original.subject.clone(),
        headers,
        serde_json::to_vec(&original.body).expect("JSON").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("acknowledged");

    let ledger = Ledger {
        attempts: vec![phantom_ack(&second)],
    };
    let tampered = Agreement::measure(&pool, &nats, &stream, &ledger).await;
    assert!(!tampered.holds());
    assert_eq!(
        tampered.lost(),
        2,
        "the acknowledgement and the event_log row: {tampered:#?}"
    );
    assert_eq!(
        tampered.duplicated(),
        1,
        "the repeated message: {tampered:#?}"
    );
    // The stale version, and the repeat's message id not being its event id.
    assert_eq!(tampered.mismatched(), 2, "{tampered:#?}");
}
