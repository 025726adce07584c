//! Rebuilding read models by replay: the result equals the live read model,
//! queries are answered throughout, an interrupted (or killed) rebuild resumes, old
//! event shapes are upcast, and the live runner carries on after the switch.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use domain::{ProjectCommand, ProjectId, ProjectName, ProjectStatus};
use hub_tests::feed::{migrated_pool, run, store_0_9_project_created};
use hub_tests::process::Signal;
use hub_tests::rebuild::{
    bus, caught_up, generate_history, live_runners, models, rebuild_fully, schema_names, snapshot,
    table_exists, HUB_ID,
};
use hub_tests::{wait_until, TestDb};
use projections::{
    rebuild, status, ProjectionState, ReadModels, RebuildOptions, RebuildOutcome, Rebuildable,
};

#[tokio::test]
async fn a_rebuild_equals_the_live_read_models_and_the_live_runner_carries_on() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    let bus = bus(&pool);
    let ids = generate_history(&bus, 200).await;
    caught_up(&pool).await;
    let before = models(&pool).await;
    let stats_before = snapshot(&pool, "project_stats", "total").await;
    let schema_before = schema_names(&pool).await;
    assert_eq!(before.0.len(), 200);
    // A projection bug, as a rebuild is there to repair.
    sqlx::query("UPDATE projects SET status = 'ERROR', name = 'wrong'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM event_log WHERE sequence > 1")
        .execute(&pool)
        .await
        .unwrap();

    for projection in Rebuildable::all(HUB_ID) {
        let outcome = rebuild_fully(&pool, &projection).await;
        let RebuildOutcome::Switched(progress) = outcome else {
            panic!("the rebuild of {} stopped early", projection.name());
        };
        assert_eq!(progress.done, before.1.len() as i64, "every event replayed");
        assert!(!table_exists(&pool, &projection.shadow_table()).await);
        assert!(!table_exists(&pool, &format!("{}__old", projection.table())).await);
    }
    assert_eq!(models(&pool).await, before);
    assert_eq!(
        snapshot(&pool, "project_stats", "total").await,
        stats_before,
        "the statistics view reads the new table"
    );
    assert_eq!(
        schema_names(&pool).await,
        schema_before,
        "indexes and constraints keep their names"
    );
    let statuses = projections::status::list(&pool, HUB_ID).await.unwrap();
    assert!(statuses
        .iter()
        .all(|s| s.state == ProjectionState::Live && s.lag_events == 0));

    // The live runner goes on writing to the new table.
    let renamed = ProjectName::parse("after the rebuild").unwrap();
    run(
        &bus,
        ids[1],
        ProjectCommand::RenameProject { name: renamed },
    )
    .await
    .unwrap();
    wait_until(
        "the live runner projects a new event",
        Duration::from_secs(30),
        || async {
            let name: String = sqlx::query_scalar("SELECT name FROM projects WHERE id = $1")
                .bind(ids[1].as_uuid())
                .fetch_one(&pool)
                .await
                .ok()?;
            (name == "after the rebuild").then_some(())
        },
    )
    .await;
    caught_up(&pool).await;
}

#[tokio::test]
async fn the_status_column_admits_exactly_the_domain_statuses_also_after_a_rebuild() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    let ids = generate_history(&bus(&pool), 1).await;
    caught_up(&pool).await;
    for projection in Rebuildable::all(HUB_ID) {
        rebuild_fully(&pool, &projection).await;
    }
    let set_status = |status: &str| {
        sqlx::query("UPDATE projects SET status = $2 WHERE id = $1")
            .bind(ids[0].as_uuid())
            .bind(status.to_owned())
            .execute(&pool)
    };
    for status in ProjectStatus::ALL {
        set_status(status.as_str())
            .await
            .unwrap_or_else(|err| panic!("{status} is refused: {err}"));
    }
    for unknown in ["BROKEN", "running", ""] {
        let refused = set_status(unknown).await.expect_err(unknown);
        let constraint = refused
            .as_database_error()
            .and_then(|db| db.constraint())
            .map(str::to_owned);
        assert_eq!(
            constraint.as_deref(),
            Some("projects_status_known"),
            "{unknown:?}: {refused}"
        );
    }

    // Were a value to get past the column, reading it is an error, not a
    // status guessed for it.
    sqlx::query("ALTER TABLE projects DROP CONSTRAINT projects_status_known")
        .execute(&pool)
        .await
        .unwrap();
    set_status("BROKEN").await.unwrap();
    let read = ReadModels::new(pool.clone())
        .project(ids[0].as_uuid())
        .await;
    assert!(read.is_err(), "an unknown status was read as {read:?}");
}

#[tokio::test]
async fn a_shadow_table_left_by_an_interrupted_rebuild_gets_the_status_constraint_too() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    // The schema as it was before the constraint, with a rebuild's shadow
    // table left half done.
    hub_tests::db::migrate_before(&pool, "project status check").await;
    sqlx::query("CREATE TABLE projects__rebuild (LIKE projects INCLUDING ALL EXCLUDING INDEXES)")
        .execute(&pool)
        .await
        .unwrap();

    infrastructure::db::migrate(&pool).await.unwrap();
    for table in ["projects", "projects__rebuild"] {
        let constraints: Vec<String> = sqlx::query_scalar(
            "SELECT conname::text FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(constraints, ["projects_status_known"], "{table}");
    }
}

#[tokio::test]
async fn a_rebuild_interrupted_with_an_index_a_later_migration_dropped_switches_without_it() {
    // Each migration that replaced or dropped an index of `event_log` and
    // kept the shadow table of an interrupted rebuild (0011 drops it), and
    // that index as such a rebuild had built it on its shadow table.
    for (migration, old_index) in [
        (
            "event log subject in feed order",
            "CREATE INDEX event_log_subject_idx__rebuild ON event_log__rebuild (subject text_pattern_ops)",
        ),
        (
            "event log without timestamp index",
            "CREATE INDEX event_log_timestamp_idx__rebuild ON event_log__rebuild (\"timestamp\")",
        ),
    ] {
        let db = TestDb::create().await;
        let pool = db.pool().await;
        hub_tests::db::migrate_before(&pool, migration).await;
        interrupted_after(&pool, &[old_index]).await;

        infrastructure::db::migrate(&pool).await.unwrap();
        let migrated = schema_names(&pool).await;
        let outcome = rebuild_fully(&pool, &event_log()).await;
        assert!(
            matches!(outcome, RebuildOutcome::Switched(_)),
            "{migration}: {outcome:?}"
        );
        assert_eq!(
            schema_names(&pool).await,
            migrated,
            "{migration}: the rebuilt event_log has exactly the migrated indexes"
        );
    }
}

#[tokio::test]
async fn a_rebuild_interrupted_before_its_primary_key_was_attached_attaches_it() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    generate_history(&bus(&pool), 5).await;
    caught_up(&pool).await;
    let before = models(&pool).await;
    let migrated = schema_names(&pool).await;
    // The primary key is built as a unique index beside the others and
    // attached last: a rebuild interrupted in between left the index alone.
    interrupted_after(
        &pool,
        &["CREATE UNIQUE INDEX event_log_pkey__rebuild ON event_log__rebuild (id)"],
    )
    .await;

    let outcome = rebuild_fully(&pool, &event_log()).await;
    assert!(
        matches!(outcome, RebuildOutcome::Switched(_)),
        "{outcome:?}"
    );
    assert_eq!(schema_names(&pool).await, migrated);
    let key: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE conrelid = 'event_log'::regclass AND conname = 'event_log_pkey'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(key, "PRIMARY KEY (id)");
    assert_eq!(models(&pool).await, before);
}

#[tokio::test]
async fn a_failed_index_build_fails_the_rebuild_and_a_later_run_finishes_it() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    generate_history(&bus(&pool), 5).await;
    caught_up(&pool).await;
    let before = models(&pool).await;
    let migrated = schema_names(&pool).await;
    // A row planted in the shadow table before its bulk: the bulk copies
    // the same event again, so its primary key cannot be built.
    interrupted_after(&pool, &[]).await;
    sqlx::query("INSERT INTO event_log__rebuild SELECT * FROM event_log LIMIT 1")
        .execute(&pool)
        .await
        .unwrap();

    let failed = rebuild(&pool, &event_log(), &RebuildOptions::default(), |_| {
        ControlFlow::Continue(())
    })
    .await;
    let err = failed.expect_err("a primary key over a duplicated id cannot be built");
    assert!(err.to_string().contains("event_log_pkey__rebuild"), "{err}");
    assert_eq!(
        models(&pool).await,
        before,
        "the live read models are untouched"
    );
    assert_eq!(schema_names(&pool).await, migrated);
    assert!(table_exists(&pool, "event_log__rebuild").await);

    // Without the planted row, the rebuild resumes and switches.
    sqlx::query("DELETE FROM event_log__rebuild WHERE ctid = '(0,1)'")
        .execute(&pool)
        .await
        .unwrap();
    let outcome = rebuild_fully(&pool, &event_log()).await;
    assert!(
        matches!(outcome, RebuildOutcome::Switched(_)),
        "{outcome:?}"
    );
    assert_eq!(schema_names(&pool).await, migrated);
    assert_eq!(models(&pool).await, before);
}

/// `event_log`, as a rebuild takes it.
fn event_log() -> Rebuildable {
    Rebuildable::by_name("event_log", HUB_ID).expect("event_log is rebuildable")
}

/// Leaves what a rebuild of `event_log` interrupted after its bulk pass
/// leaves: its empty shadow table, its checkpoint at the start, and the
/// `indexes` it had built.
async fn interrupted_after(pool: &sqlx::PgPool, indexes: &[&str]) {
    let shadow = "CREATE TABLE event_log__rebuild (LIKE event_log INCLUDING ALL EXCLUDING INDEXES)";
    let checkpoint = "INSERT INTO feed_checkpoints (consumer) VALUES ('event_log@rebuild')";
    for statement in [shadow].iter().chain(indexes).chain([&checkpoint]) {
        sqlx::query(statement).execute(pool).await.unwrap();
    }
}

#[tokio::test]
async fn queries_are_answered_throughout_a_rebuild_while_events_keep_arriving() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    let bus = bus(&pool);
    let ids = generate_history(&bus, 150).await;
    caught_up(&pool).await;
    // Deleted projects cannot be renamed.
    let ids: Vec<ProjectId> = ids
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, id)| id)
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let pool = pool.clone();
        let done = done.clone();
        async move {
            let mut queries = 0u32;
            while !done.load(Ordering::SeqCst) {
                let count: i64 = sqlx::query_scalar("SELECT count(*) FROM projects")
                    .fetch_one(&pool)
                    .await
                    .expect("projects is always readable");
                assert!(count >= 150, "projects never looks empty (saw {count})");
                let total: i64 = sqlx::query_scalar("SELECT total FROM project_stats")
                    .fetch_one(&pool)
                    .await
                    .expect("project_stats is always readable");
                assert!(total > 0);
                queries += 1;
            }
            queries
        }
    });
    let writer = tokio::spawn({
        let bus = Arc::new(bus);
        let done = done.clone();
        async move {
            let mut i = 0;
            // At least a few writes, so some land during the rebuild.
            while i < 5 || !done.load(Ordering::SeqCst) {
                let name = ProjectName::parse(&format!("moving {i}")).unwrap();
                run(
                    &bus,
                    ids[i % ids.len()],
                    ProjectCommand::RenameProject { name },
                )
                .await
                .unwrap();
                i += 1;
            }
            i
        }
    });
    let small_batches = RebuildOptions {
        batch_size: 50,
        ..RebuildOptions::default()
    };
    let outcome = rebuild(&pool, &Rebuildable::Projects, &small_batches, |_| {
        ControlFlow::Continue(())
    })
    .await
    .expect("the rebuild succeeds");
    assert!(matches!(outcome, RebuildOutcome::Switched(_)));
    done.store(true, Ordering::SeqCst);
    let writes = writer.await.unwrap();
    assert!(writes >= 5);
    let queries = reader.await.expect("no query failed");
    assert!(queries > 0, "the reader ran during the rebuild");

    // Nothing was lost at the switch: the live table, after catching up,
    // equals a fresh replay of everything.
    caught_up(&pool).await;
    let live = snapshot(&pool, "projects", "id").await;
    rebuild_fully(&pool, &Rebuildable::Projects).await;
    assert_eq!(snapshot(&pool, "projects", "id").await, live);
}

#[tokio::test]
async fn an_interrupted_rebuild_resumes_from_its_checkpoint() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    let bus = bus(&pool);
    generate_history(&bus, 100).await;
    caught_up(&pool).await;
    let before = models(&pool).await;
    let total = before.1.len() as i64;
    let options = RebuildOptions {
        batch_size: 40,
        ..RebuildOptions::default()
    };

    for projection in Rebuildable::all(HUB_ID) {
        let mut batches = 0;
        let first = rebuild(&pool, &projection, &options, |_| {
            batches += 1;
            if batches == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
        .unwrap();
        let RebuildOutcome::Stopped(stopped) = first else {
            panic!("the first run stops after three batches");
        };
        assert_eq!(stopped.done, 120);
        let status = projections::status::list(&pool, HUB_ID).await.unwrap();
        let state = &status
            .iter()
            .find(|s| s.name == projection.name())
            .unwrap()
            .state;
        assert_eq!(state, &ProjectionState::Rebuilding { done: 120, total });

        let second = rebuild(&pool, &projection, &options, |_| ControlFlow::Continue(()))
            .await
            .unwrap();
        let RebuildOutcome::Switched(resumed) = second else {
            panic!("the second run finishes");
        };
        assert_eq!(resumed.this_run, total - 120, "resumed, not restarted");
        assert_eq!(resumed.done, total);
    }
    assert_eq!(models(&pool).await, before);
}

#[tokio::test]
async fn two_rebuilds_of_one_read_model_do_not_run_at_once() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    // What a running rebuild holds for as long as it runs.
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('hub.rebuild.projects'))")
        .execute(&mut *holder)
        .await
        .unwrap();
    let second = rebuild(
        &pool,
        &Rebuildable::Projects,
        &RebuildOptions::default(),
        |_| ControlFlow::Continue(()),
    )
    .await;
    assert!(matches!(
        second,
        Err(projections::RebuildError::AlreadyRunning("projects"))
    ));
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *holder)
        .await
        .unwrap();
    assert!(matches!(
        rebuild_fully(&pool, &Rebuildable::Projects).await,
        RebuildOutcome::Switched(_)
    ));
}

#[tokio::test]
async fn an_old_shaped_event_is_upcast_for_the_aggregate_the_projection_and_a_rebuild() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    let bus = bus(&pool);
    // `ProjectCreated` as version 0.9 stored it: ports as flat fields.
    let id = ProjectId::new();
    store_0_9_project_created(&pool, id).await;

    // The aggregate loads it (a start is only accepted from a known state).
    let started = run(&bus, id, ProjectCommand::StartProject)
        .await
        .expect("the upcast event loads into the aggregate");
    assert_eq!(started.version, 2);
    caught_up(&pool).await;
    let ports = || async {
        sqlx::query_as::<_, (i32, i32, i32, i32, String)>(
            "SELECT backend_port, frontend_port, postgres_port, redis_port, status \
             FROM projects WHERE id = $1",
        )
        .bind(id.as_uuid())
        .fetch_one(&pool)
        .await
        .expect("the project's row")
    };
    let expected = (21000, 21001, 21002, 21003, "STARTING".to_owned());
    assert_eq!(ports().await, expected, "the live projection upcasts");
    rebuild_fully(&pool, &Rebuildable::Projects).await;
    assert_eq!(ports().await, expected, "a rebuild upcasts");
}

#[tokio::test]
async fn an_outdated_read_model_is_listed_and_a_rebuild_records_the_code_version() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    generate_history(&bus(&pool), 5).await;
    caught_up(&pool).await;
    let versions = |statuses: &[projections::ProjectionStatus]| -> Vec<(&str, i32, i32, bool)> {
        statuses
            .iter()
            .map(|s| (s.name, s.version, s.code_version, s.is_outdated()))
            .collect()
    };
    let listed = status::list(&pool, HUB_ID).await.unwrap();
    assert_eq!(
        versions(&listed),
        vec![("projects", 1, 1, false), ("event_log", 2, 2, false)],
        "a fresh install is at the current versions (migration 0011 moved an empty log to 2)"
    );
    assert!(status::outdated(&pool, HUB_ID).await.unwrap().is_empty());

    // A table built by an older build of the projection.
    sqlx::query("UPDATE read_model_versions SET version = 0 WHERE read_model = 'projects'")
        .execute(&pool)
        .await
        .unwrap();
    let listed = status::list(&pool, HUB_ID).await.unwrap();
    assert_eq!(
        versions(&listed),
        vec![("projects", 0, 1, true), ("event_log", 2, 2, false)]
    );
    assert_eq!(
        status::outdated(&pool, HUB_ID).await.unwrap(),
        vec![Rebuildable::Projects]
    );

    let before = models(&pool).await;
    rebuild_fully(&pool, &Rebuildable::Projects).await;
    assert_eq!(models(&pool).await, before);
    let listed = status::list(&pool, HUB_ID).await.unwrap();
    assert_eq!(versions(&listed)[0], ("projects", 1, 1, false));
    assert!(status::outdated(&pool, HUB_ID).await.unwrap().is_empty());
    let stored: i32 =
        sqlx::query_scalar("SELECT version FROM read_model_versions WHERE read_model = 'projects'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, Rebuildable::Projects.code_version());

    // A row lost (e.g. deleted by hand) counts as version 1: outdated.
    sqlx::query("DELETE FROM read_model_versions WHERE read_model = 'event_log'")
        .execute(&pool)
        .await
        .unwrap();
    let listed = status::list(&pool, HUB_ID).await.unwrap();
    assert_eq!(versions(&listed)[1], ("event_log", 1, 2, true));
}

#[tokio::test]
async fn the_hub_binary_lists_and_rebuilds_the_read_models() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    generate_history(&bus(&pool), 20).await;
    caught_up(&pool).await;
    let before = models(&pool).await;
    let hub = hub_tests::process::cargo_executable(&["-p", "api", "--bin", "hub"]).await;
    let hub_cmd = |args: &[&str]| {
        let mut command = std::process::Command::new(&hub);
        command
            .arg("projections")
            .args(args)
            .env("DATABASE_URL", db.url())
            .env("HUB_ID", HUB_ID)
            .env("RUST_LOG", "warn");
        command.output().expect("run hub")
    };

    let rebuilt = hub_cmd(&["rebuild", "--all", "--batch-size", "7"]);
    assert!(rebuilt.status.success(), "{rebuilt:?}");
    assert_eq!(models(&pool).await, before);

    let listed = hub_cmd(&["list"]);
    assert!(listed.status.success(), "{listed:?}");
    let text = String::from_utf8_lossy(&listed.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "a header, two read models and the two other consumers: {text}"
    );
    assert!(lines[1].starts_with("projects") && lines[1].ends_with("live"));
    assert!(lines[2].starts_with("event_log") && lines[2].ends_with("live"));
    assert!(lines[3].starts_with("nats_relay") && lines[3].ends_with("live"));
    assert!(lines[4].starts_with("project_orchestrator") && lines[4].ends_with("live"));

    let unknown = hub_cmd(&["rebuild", "nope"]);
    assert!(!unknown.status.success());
}

/// The number after `key=` in a log line (`this_run=588`).
fn logged_number(text: &str, key: &str) -> Option<i64> {
    let at = text.rfind(&format!("{key}="))? + key.len() + 1;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `hub projections rebuild projects` as a process, one event per batch,
/// logging at info (progress lines when stderr is not a terminal).
async fn spawn_rebuild(hub: &std::path::Path, db: &TestDb) -> tokio::process::Child {
    tokio::process::Command::new(hub)
        .args(["projections", "rebuild", "projects", "--batch-size", "1"])
        .env("DATABASE_URL", db.url())
        .env("HUB_ID", HUB_ID)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run hub projections rebuild")
}

/// Stops `signal`ing a rebuild process part-way: waits until it has
/// committed a few batches, then holds the shadow table so the next batch
/// waits (the rebuild is then certainly mid-way), signals the process, and
/// lets go. Returns the events the rebuild had committed, and the output.
async fn interrupt_rebuild(
    pool: &sqlx::PgPool,
    hub: &std::path::Path,
    db: &TestDb,
    signal: Signal,
) -> (i64, String) {
    // This run's own batches, past where the last run stopped.
    let from = hub_tests::feed::checkpoint_handled(pool, "projects@rebuild").await;
    let mut child = spawn_rebuild(hub, db).await;
    let output = hub_tests::process::Output::collect(&mut child);
    wait_until(
        "this run to commit a few batches",
        Duration::from_secs(30),
        || async {
            let handled = hub_tests::feed::checkpoint_handled(pool, "projects@rebuild").await;
            (handled >= from + 3).then_some(())
        },
    )
    .await;
    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE projects__rebuild IN EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .expect("hold the shadow table");
    let done = hub_tests::feed::checkpoint_handled(pool, "projects@rebuild").await;
    hub_tests::process::signal(&child, signal);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the rebuild ends when signalled")
        .expect("wait for the rebuild");
    holder.rollback().await.expect("let go of the shadow table");
    // The interrupted rebuild's database session ends once its server side
    // notices the client is gone; until then it holds the rebuild lock.
    let mut probe = pool.acquire().await.expect("a connection");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let free: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('hub.rebuild.projects'))")
                .fetch_one(&mut *probe)
                .await
                .expect("try the rebuild lock");
        if free {
            sqlx::query("SELECT pg_advisory_unlock(hashtext('hub.rebuild.projects'))")
                .execute(&mut *probe)
                .await
                .expect("release the probe's lock");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the interrupted rebuild's session still holds the rebuild lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if signal == Signal::Kill {
        assert!(!status.success(), "killed: {status:?}");
    } else {
        assert!(
            status.success(),
            "Ctrl-C stops it cleanly: {status:?}\n{}",
            output.text()
        );
    }
    (done, output.text())
}

#[tokio::test]
async fn a_rebuild_killed_or_interrupted_mid_way_continues_from_its_checkpoint() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let _runners = live_runners(&db);
    generate_history(&bus(&pool), 60).await;
    caught_up(&pool).await;
    let before = models(&pool).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let hub = hub_tests::process::cargo_executable(&["-p", "api", "--bin", "hub"]).await;

    // kill -9, then Ctrl-C: each time the shadow table and the rebuild's
    // checkpoint stay, and nothing switched.
    let mut committed = 0;
    for signal in [Signal::Kill, Signal::Int] {
        let (done, output) = interrupt_rebuild(&pool, &hub, &db, signal).await;
        assert!(
            done > committed && done < total,
            "mid-way: {done} of {total}\n{output}"
        );
        committed = done;
        assert!(table_exists(&pool, "projects__rebuild").await);
        assert_eq!(models(&pool).await, before, "the live table is untouched");
        if signal == Signal::Int {
            assert!(output.contains("run it again to continue"), "{output}");
        }
    }
    let kept = hub_tests::feed::checkpoint_handled(&pool, "projects@rebuild").await;
    assert!(
        kept >= committed,
        "the checkpoint survives: {kept} < {committed}"
    );

    // Run again: it continues from its checkpoint, not from zero.
    let mut child = spawn_rebuild(&hub, &db).await;
    let output = hub_tests::process::Output::collect(&mut child);
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("the rebuild finishes")
        .expect("wait for the rebuild");
    let text = output
        .wait_for("the rebuild's last line", Duration::from_secs(10), |line| {
            line.contains("rebuilt and switched over")
        })
        .await;
    assert!(status.success(), "{}", output.text());
    let this_run = logged_number(&text, "this_run").expect("this_run in the last line");
    let events = logged_number(&text, "events").expect("events in the last line");
    assert_eq!(events, total, "{text}");
    assert_eq!(this_run, total - kept, "only what was left: {text}");
    assert!(!table_exists(&pool, "projects__rebuild").await);
    caught_up(&pool).await;
    assert_eq!(models(&pool).await, before);
}
