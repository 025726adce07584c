//! Poison events: an event a consumer keeps failing on is parked (read
//! models) or halted on (relay, process manager); outages are neither; a
//! retry replays parked events in order once the cause is fixed.

use std::sync::Arc;
use std::time::Duration;

use hub_tests::feed::{
    connect_options, create_handled_table, create_project, handled_rows, insert_aggregate_event,
    migrated_pool, quick_config, BreakableConsumer, Inserted, POISON_ERROR,
};
use hub_tests::graphql::{data, view};
use hub_tests::jetstream::health_report;
use hub_tests::ops::payload;
use hub_tests::rebuild::{live_runners, rebuild_fully, snapshot};
use hub_tests::views::{HealthStatus, Project};
use hub_tests::{holds_for, wait_until, TestDb, TestHub};
use infrastructure::feed::{
    parked_events, retry_parked, spawn_runner, AppendSignal, FeedHandle, FeedPosition, ParkedEvent,
    PoisonPolicy, RunnerConfig,
};
use projections::Rebuildable;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const ARRIVES: Duration = Duration::from_secs(10);

/// Parks (or halts) after two failed attempts, with short backoffs.
fn poison_config(poison: PoisonPolicy) -> RunnerConfig {
    RunnerConfig {
        poison,
        max_attempts: 2,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..quick_config()
    }
}

fn position(inserted: &Inserted) -> FeedPosition {
    FeedPosition {
        transaction_id: inserted.transaction_id,
        position: inserted.position,
    }
}

/// Commits one event of `Test` aggregate `aggregate` (sequence `sequence`).
async fn append(pool: &PgPool, aggregate: &str, sequence: i64) -> Inserted {
    let mut conn = pool.acquire().await.expect("a connection");
    insert_aggregate_event(&mut conn, aggregate, sequence).await
}

async fn wait_for_handled(handle: &FeedHandle, count: i64) {
    wait_until(&format!("{count} events handled"), ARRIVES, || {
        let status = handle.status();
        async move { (status.handled >= count).then_some(()) }
    })
    .await;
}

fn handled_ids(rows: &[(String, Uuid)]) -> Vec<Uuid> {
    rows.iter().map(|(_, id)| *id).collect()
}

fn ids(parked: &[ParkedEvent]) -> Vec<Uuid> {
    parked.iter().map(|p| p.event_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_parked_with_its_aggregates_later_events_and_retried_in_order() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    create_handled_table(&pool).await;
    let consumer = Arc::new(BreakableConsumer::new("parking"));

    // A: a1, b1 (poison), b2, a2. B's later event must wait behind b1.
    let a1 = append(&pool, "a", 1).await;
    let b1 = append(&pool, "b", 1).await;
    let b2 = append(&pool, "b", 2).await;
    let a2 = append(&pool, "a", 2).await;
    consumer.poison(b1.event_id);
    let handle = spawn_runner(
        consumer.clone(),
        connect_options(&db),
        poison_config(PoisonPolicy::Park),
        &AppendSignal::default(),
    );
    wait_for_handled(&handle, 4).await;

    let status = handle.status();
    assert_eq!(
        status.checkpoint,
        position(&a2),
        "the checkpoint moved past it"
    );
    assert_eq!(status.halted, None, "a parking consumer does not halt");
    assert_eq!(status.consecutive_failures, 0, "{status:?}");
    assert_eq!(
        handled_ids(&handled_rows(&pool).await),
        vec![a1.event_id, a2.event_id],
        "the other aggregate's events were handled, once each"
    );
    let parked = parked_events(&pool, "parking").await.unwrap();
    assert_eq!(ids(&parked), vec![b1.event_id, b2.event_id]);
    let poison = &parked[0];
    assert_eq!(poison.feed_position(), position(&b1));
    assert_eq!((poison.aggregate_id.as_str(), poison.sequence), ("b", 1));
    assert!(
        poison
            .error
            .as_deref()
            .is_some_and(|e| e.contains(POISON_ERROR)),
        "{poison:?}"
    );
    assert_eq!(poison.attempts, 3, "two batch attempts and one on its own");
    assert_eq!(poison.held_behind, None);
    let held = &parked[1];
    assert_eq!(held.held_behind, Some(b1.event_id), "{held:?}");
    assert_eq!((held.error.as_deref(), held.attempts), (None, 0));

    // A later event of B is held too, in a normal batch; A's goes on.
    let b3 = append(&pool, "b", 3).await;
    let a3 = append(&pool, "a", 3).await;
    wait_for_handled(&handle, 6).await;
    assert_eq!(
        ids(&parked_events(&pool, "parking").await.unwrap()),
        vec![b1.event_id, b2.event_id, b3.event_id]
    );

    // A retry before the fix changes nothing but the error and attempts.
    let report = retry_parked(&pool, consumer.as_ref()).await.unwrap();
    assert!(report.replayed.is_empty(), "{report:?}");
    assert_eq!(
        ids(&report.still_parked),
        vec![b1.event_id, b2.event_id, b3.event_id]
    );
    assert_eq!(report.still_parked[0].attempts, 4);
    assert!(report.still_parked[0].last_retry_at.is_some());
    assert_eq!(report.still_parked[2].held_behind, Some(b1.event_id));

    // The fix, then the retry: B's events apply in order, nothing is left.
    consumer.cure();
    let report = retry_parked(&pool, consumer.as_ref()).await.unwrap();
    assert_eq!(
        ids(&report.replayed),
        vec![b1.event_id, b2.event_id, b3.event_id]
    );
    assert!(report.still_parked.is_empty(), "{report:?}");
    assert!(parked_events(&pool, "parking").await.unwrap().is_empty());
    assert_eq!(
        handled_ids(&handled_rows(&pool).await),
        vec![
            a1.event_id,
            a2.event_id,
            a3.event_id,
            b1.event_id,
            b2.event_id,
            b3.event_id
        ]
    );

    // B is no longer held back: its next event is handled live.
    let b4 = append(&pool, "b", 4).await;
    wait_for_handled(&handle, 7).await;
    assert_eq!(
        handled_ids(&handled_rows(&pool).await).last(),
        Some(&b4.event_id)
    );
    assert!(parked_events(&pool, "parking").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_taking_over_holds_back_the_aggregates_parked_before_it() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    create_handled_table(&pool).await;
    let consumer = Arc::new(BreakableConsumer::new("takeover"));
    let a1 = append(&pool, "a", 1).await;
    let b1 = append(&pool, "b", 1).await;
    consumer.poison(b1.event_id);
    let spawn = || {
        spawn_runner(
            consumer.clone(),
            connect_options(&db),
            poison_config(PoisonPolicy::Park),
            &AppendSignal::default(),
        )
    };
    let first = spawn();
    wait_for_handled(&first, 2).await;
    first.stop();
    drop(first);

    // The fix is in, but b1 is still parked: b2 must wait behind it.
    consumer.cure();
    let b2 = append(&pool, "b", 2).await;
    let a2 = append(&pool, "a", 2).await;
    let second = spawn();
    wait_for_handled(&second, 4).await;
    assert_eq!(
        handled_ids(&handled_rows(&pool).await),
        vec![a1.event_id, a2.event_id]
    );
    let parked = parked_events(&pool, "takeover").await.unwrap();
    assert_eq!(ids(&parked), vec![b1.event_id, b2.event_id]);
    assert_eq!(parked[1].held_behind, Some(b1.event_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halting_consumer_stays_on_a_poison_event_and_never_skips_it() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    create_handled_table(&pool).await;
    let consumer = Arc::new(BreakableConsumer::new("halting"));
    let first = append(&pool, "a", 1).await;
    let poison = append(&pool, "b", 1).await;
    let after = append(&pool, "c", 1).await;
    consumer.poison(poison.event_id);
    let handle = spawn_runner(
        consumer.clone(),
        connect_options(&db),
        poison_config(PoisonPolicy::Halt),
        &AppendSignal::default(),
    );

    let halted = wait_until("the runner to halt on the poison event", ARRIVES, || {
        let status = handle.status();
        async move { status.halted }
    })
    .await;
    assert_eq!(halted.event_id, poison.event_id);
    assert_eq!(halted.position, position(&poison));
    assert!(halted.error.contains(POISON_ERROR), "{halted:?}");
    // The event before it was committed; nothing after it is, and nothing
    // is parked, however long it keeps trying.
    holds_for(
        "the runner to stay on the event",
        Duration::from_millis(500),
        || {
            let status = handle.status();
            let checkpoint = position(&first);
            async move { status.handled == 1 && status.checkpoint == checkpoint }
        },
    )
    .await;
    assert!(consumer.attempts() > 4, "it keeps retrying");
    assert_eq!(
        handled_ids(&handled_rows(&pool).await),
        vec![first.event_id]
    );
    assert!(parked_events(&pool, "halting").await.unwrap().is_empty());
    assert!(handle.status().halted.is_some());

    consumer.cure();
    wait_for_handled(&handle, 3).await;
    assert_eq!(handle.status().halted, None, "handled: no longer halted");
    assert_eq!(
        handled_ids(&handled_rows(&pool).await),
        vec![first.event_id, poison.event_id, after.event_id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_until_it_ends_and_never_parked() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    create_handled_table(&pool).await;
    let consumer = Arc::new(BreakableConsumer::new("outage"));
    consumer.set_outage(true);
    let event = append(&pool, "a", 1).await;
    let handle = spawn_runner(
        consumer.clone(),
        connect_options(&db),
        poison_config(PoisonPolicy::Park),
        &AppendSignal::default(),
    );

    // Far more failures than `max_attempts` (2), each one recorded.
    wait_until("many failed attempts", ARRIVES, || {
        let failures = handle.status().consecutive_failures;
        async move { (failures >= 6).then_some(()) }
    })
    .await;
    assert!(consumer.attempts() >= 6);
    let status = handle.status();
    assert_eq!(status.handled, 0, "{status:?}");
    assert!(status.consecutive_failures >= 6, "{status:?}");
    assert_eq!(status.halted, None);
    assert!(parked_events(&pool, "outage").await.unwrap().is_empty());

    consumer.set_outage(false);
    wait_for_handled(&handle, 1).await;
    assert_eq!(
        handled_ids(&handled_rows(&pool).await),
        vec![event.event_id]
    );
    assert!(parked_events(&pool, "outage").await.unwrap().is_empty());
}

/// The id of the project created with `name` (read from the store).
async fn project_id_named(pool: &PgPool, name: &str) -> String {
    sqlx::query_scalar(
        "SELECT aggregate_id FROM events \
         WHERE event_type = 'ProjectCreated' AND payload -> 'ProjectCreated' ->> 'name' = $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .expect("the project's creation is stored")
}

/// Runs `hub projections <args>` against `db`.
fn hub_projections(
    hub: &std::path::Path,
    db: &TestDb,
    hub_id: &str,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(hub)
        .arg("projections")
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("HUB_ID", hub_id)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run hub")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_for_the_projects_read_model_is_parked_shown_and_retried() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    // The poisoned project's own mutations wait for a row that does not come.
    config.read_your_writes_timeout_ms = 1000;
    let hub = TestHub::start_with(config).await;
    let pool = db.pool().await;
    let hub_bin = hub_tests::process::cargo_executable(&["-p", "api", "--bin", "hub"]).await;
    let good = hub.create_project("Good one", "/srv/good-one").await;

    // The "bug": the projection cannot write one project's row.
    sqlx::query("ALTER TABLE projects ADD CONSTRAINT projects_test_bug CHECK (name <> 'Poison')")
        .execute(&pool)
        .await
        .unwrap();
    // The change is recorded: the answer says so, with the project as the
    // command left it, though the read model has no row for it.
    let answer = hub
        .graphql(
            "mutation($name: String!, $path: String!) { createProject(input: {name: $name, path: $path}) \
             { stale project { name } } }",
            json!({"name": "Poison", "path": "/srv/poison"}),
        )
        .await;
    let created = data(&answer, "createProject");
    assert_eq!(created["stale"], true, "{answer}");
    assert_eq!(created["project"]["name"], "Poison", "{answer}");
    let poison = project_id_named(&pool, "Poison").await;
    let parked = wait_until("the poison event to be parked", ARRIVES, || {
        let pool = pool.clone();
        async move {
            let parked = parked_events(&pool, "projects").await.ok()?;
            (!parked.is_empty()).then_some(parked)
        }
    })
    .await;
    let (event_id, transaction_id, position): (Uuid, i64, i64) = sqlx::query_as(
        "SELECT event_id, transaction_id::text::bigint, position FROM events \
         WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(&poison)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].event_id, event_id);
    assert_eq!(
        (parked[0].transaction_id, parked[0].position),
        (transaction_id, position)
    );
    assert_eq!(parked[0].event_type, "ProjectCreated");
    assert!(
        parked[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("projects_test_bug")),
        "{parked:?}"
    );

    // A later event of the poisoned project is held behind it ...
    let renamed = hub
        .graphql(
            "mutation($id: ID!, $name: String!) { renameProject(id: $id, name: $name) { stale } }",
            json!({"id": poison, "name": "Poison renamed"}),
        )
        .await;
    assert_eq!(data(&renamed, "renameProject")["stale"], true, "{renamed}");
    wait_until("the rename to be held", ARRIVES, || {
        let pool = pool.clone();
        async move {
            let parked = parked_events(&pool, "projects").await.ok()?;
            (parked.len() == 2 && parked[1].held_behind == Some(event_id)).then_some(())
        }
    })
    .await;
    // ... while other projects' events go on being projected.
    let renamed = hub
        .graphql(
            hub_tests::ops::RENAME,
            json!({"id": good, "name": "Good renamed"}),
        )
        .await;
    let good_renamed: Project = view(payload(&renamed, "renameProject"));
    assert_eq!(good_renamed.name, "Good renamed", "{renamed}");
    hub.create_project("Good two", "/srv/good-two").await;

    let report = health_report(&hub).await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert_eq!(report.consumer("projects").parked, Some(2), "{report:?}");
    assert_eq!(report.consumer("event_log").parked, Some(0), "{report:?}");

    let listed = hub_projections(&hub_bin, &db, hub.hub_id(), &["list"]);
    assert!(listed.status.success(), "{listed:?}");
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let columns = |name: &str| -> Vec<String> {
        text.lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line: {text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert!(text.lines().next().unwrap().contains("PARKED"), "{text}");
    // NAME CHECKPOINT HANDLED LAG LAG(s) VERSION PARKED STATE
    assert_eq!(columns("projects")[6], "2", "{text}");
    assert_eq!(columns("event_log")[6], "0", "{text}");

    // Retrying before the fix keeps both parked, and says so.
    let retried = hub_projections(&hub_bin, &db, hub.hub_id(), &["retry", "projects"]);
    assert!(!retried.status.success(), "{retried:?}");
    let out = String::from_utf8_lossy(&retried.stdout).into_owned();
    assert!(out.contains("0 replayed, 2 still parked"), "{out}");

    let unknown = hub_projections(&hub_bin, &db, hub.hub_id(), &["retry", "nope"]);
    assert!(!unknown.status.success(), "{unknown:?}");

    // The fix, then the retry.
    sqlx::query("ALTER TABLE projects DROP CONSTRAINT projects_test_bug")
        .execute(&pool)
        .await
        .unwrap();
    let retried = hub_projections(&hub_bin, &db, hub.hub_id(), &["retry", "projects"]);
    assert!(retried.status.success(), "{retried:?}");
    let out = String::from_utf8_lossy(&retried.stdout).into_owned();
    assert!(out.contains("2 replayed, 0 still parked"), "{out}");
    assert!(out.contains(&event_id.to_string()), "{out}");

    let project = hub.project(&poison).await;
    assert_eq!(project["name"], "Poison renamed", "{project}");
    assert_eq!(project["version"], 2, "{project}");
    assert!(parked_events(&pool, "projects").await.unwrap().is_empty());
    wait_until("the hub to report healthy again", ARRIVES, || async {
        let report = health_report(&hub).await;
        (report.status == HealthStatus::Healthy && report.consumer("projects").parked == Some(0))
            .then_some(())
    })
    .await;

    // The read model equals one rebuilt from scratch.
    let retried_rows = snapshot(&pool, "projects", "id").await;
    assert_eq!(retried_rows.len(), 3);
    rebuild_fully(&pool, &Rebuildable::Projects).await;
    assert_eq!(snapshot(&pool, "projects", "id").await, retried_rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_after_the_fix_applies_the_parked_events_and_drops_them() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    let bus = hub_tests::rebuild::bus(&pool);
    sqlx::query("ALTER TABLE projects ADD CONSTRAINT projects_test_bug CHECK (name <> 'Poison')")
        .execute(&pool)
        .await
        .unwrap();
    let (poison, created) = create_project(&bus, "Poison").await;
    created.expect("the command itself succeeds");
    let (good, created) = create_project(&bus, "Good").await;
    created.expect("create a project");
    let rows = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>("SELECT name FROM projects ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    wait_until(
        "the poison event parked, the other project projected",
        ARRIVES,
        || {
            let pool = pool.clone();
            async move {
                let parked = parked_events(&pool, "projects").await.ok()?;
                let names = rows(pool).await;
                (parked.len() == 1 && names == ["Good"]).then_some(())
            }
        },
    )
    .await;
    let parked = parked_events(&pool, "projects").await.unwrap();
    assert_eq!(parked[0].aggregate_id, poison.to_string());
    assert_ne!(parked[0].aggregate_id, good.to_string());

    sqlx::query("ALTER TABLE projects DROP CONSTRAINT projects_test_bug")
        .execute(&pool)
        .await
        .unwrap();
    rebuild_fully(&pool, &Rebuildable::Projects).await;
    assert!(parked_events(&pool, "projects").await.unwrap().is_empty());
    assert_eq!(rows(pool.clone()).await, ["Good", "Poison"]);
}
