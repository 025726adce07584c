//! The process manager across crashes and hub processes: a request is run
//! at most once and completed exactly once, whoever runs it and whenever
//! the hub dies.

use std::time::Duration;

use domain::{ProjectCommand, ProjectError};
use hub_tests::feed::{command_bus, create_project_at, migrated_pool, run};
use hub_tests::jetstream::health_report;
use hub_tests::ops::payload;
use hub_tests::orchestration::{counted_and_gated, shell_config, ScratchDir};
use hub_tests::{holds_for, wait_until, TestDb, TestHub};
use infrastructure::orchestration::INTERRUPTED;
use infrastructure::CommandError;
use serde_json::json;

/// A directory that exists: commands run in the project's directory, and
/// a start in a missing one fails before running anything.
const EXISTING_DIR: &str = "/tmp";

const ARRIVES: Duration = Duration::from_secs(15);

/// `eventType`s of project `id`, read from the store itself.
async fn stored_types(db: &TestDb, id: &str) -> Vec<String> {
    let pool = db.pool().await;
    sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
        .bind(id)
        .fetch_all(&pool)
        .await
        .expect("read the project's events")
}

#[tokio::test]
async fn a_start_interrupted_by_killing_the_hub_is_failed_once_after_restart_and_never_run_again() {
    let db = TestDb::create().await;
    let dir = ScratchDir::create();
    let start = counted_and_gated(&dir.file("runs.log"), &dir.file("release"));
    let config = || shell_config(db.url(), &start, "true", 60);

    let first = TestHub::start_with(config()).await;
    let id = first.create_project("Crashy", EXISTING_DIR).await;
    payload(&first.start_project(&id, None).await, "startProject");
    dir.wait_for_lines("runs.log", 1).await;
    // The hub dies mid-start: its tasks and the command are dropped.
    drop(first);

    let second = TestHub::start_with(config()).await;
    let failed = second.wait_for_status(&id, "ERROR").await;
    assert_eq!(failed["lastError"], INTERRUPTED);
    assert_eq!(failed["version"], 3, "one completion for the request");
    holds_for(
        "the interrupted start not to run again",
        Duration::from_secs(1),
        || async { dir.lines("runs.log").len() == 1 },
    )
    .await;

    // The user starts again; this request runs (once) and completes.
    dir.touch("release");
    second.start_and_wait(&id).await;
    assert_eq!(dir.lines("runs.log"), ["crashy", "crashy"]);
    assert_eq!(
        stored_types(&db, &id).await,
        [
            "ProjectCreated",
            "ProjectStartRequested",
            "ProjectStartFailed",
            "ProjectStartRequested",
            "ProjectStarted",
        ]
    );
}

#[tokio::test]
async fn a_request_recorded_while_no_hub_ran_is_run_once_when_a_hub_starts() {
    let db = TestDb::create().await;
    let dir = ScratchDir::create();
    let start = format!("echo \"$HUB_PROJECT_SLUG\" >> '{}'", dir.file("runs.log"));
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, domain::PortRange::default());
    let (project_id, created) = create_project_at(&bus, "Queued", EXISTING_DIR).await;
    created.expect("create a project");
    run(&bus, project_id, ProjectCommand::StartProject)
        .await
        .expect("request a start");
    let id = project_id.to_string();

    let hub = TestHub::start_with(shell_config(db.url(), &start, "true", 60)).await;
    let running = hub.wait_for_status(&id, "RUNNING").await;
    assert_eq!(running["version"], 3);
    assert_eq!(dir.lines("runs.log"), ["queued"]);

    // Another hub later finds nothing left to do.
    drop(hub);
    let again = TestHub::start_with(shell_config(db.url(), &start, "true", 60)).await;
    wait_until(
        "the new hub's process manager to be active",
        ARRIVES,
        || async {
            let report = health_report(&again).await;
            report
                .consumer("project_orchestrator")
                .active_here
                .then_some(())
        },
    )
    .await;
    holds_for("nothing to run again", Duration::from_secs(1), || async {
        dir.lines("runs.log").len() == 1
    })
    .await;
    assert_eq!(
        stored_types(&db, &id).await,
        ["ProjectCreated", "ProjectStartRequested", "ProjectStarted"]
    );
}

#[tokio::test]
async fn two_hubs_on_one_database_run_each_start_once() {
    let db = TestDb::create().await;
    let dir = ScratchDir::create();
    let start = format!("echo \"$HUB_PROJECT_SLUG\" >> '{}'", dir.file("runs.log"));
    let stop = format!(
        "echo \"stop $HUB_PROJECT_SLUG\" >> '{}'",
        dir.file("runs.log")
    );
    let hub_a = TestHub::start_with(shell_config(db.url(), &start, &stop, 60)).await;
    let hub_b = TestHub::start_with(shell_config(db.url(), &start, &stop, 60)).await;

    let mut ids = Vec::new();
    for (i, hub) in [&hub_a, &hub_b, &hub_a, &hub_b].into_iter().enumerate() {
        let id = hub
            .create_project(&format!("Shared {i}"), EXISTING_DIR)
            .await;
        payload(&hub.start_project(&id, None).await, "startProject");
        ids.push(id);
    }
    for id in &ids {
        hub_a.wait_for_status(id, "RUNNING").await;
    }
    hub_b.stop_and_wait(&ids[0]).await;

    let mut runs = dir.lines("runs.log");
    runs.sort();
    assert_eq!(
        runs,
        [
            "shared-0",
            "shared-1",
            "shared-2",
            "shared-3",
            "stop shared-0"
        ],
        "each request ran once"
    );
    let mut active = [false; 2];
    for (runs, hub) in active.iter_mut().zip([&hub_a, &hub_b]) {
        *runs = health_report(hub)
            .await
            .consumer("project_orchestrator")
            .active_here;
    }
    assert_eq!(
        active.iter().filter(|a| **a).count(),
        1,
        "one process manager: {active:?}"
    );
    for id in &ids[1..] {
        assert_eq!(
            stored_types(&db, id).await,
            ["ProjectCreated", "ProjectStartRequested", "ProjectStarted"]
        );
    }
}

#[tokio::test]
async fn a_late_or_repeated_completion_is_rejected_and_records_nothing() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Completed", EXISTING_DIR).await;
    hub.start_and_wait(&id).await;
    let before = db.event_count().await;

    let pool = db.pool().await;
    let bus = command_bus(&pool, domain::PortRange::default());
    let project_id = domain::ProjectId::parse(&id).unwrap();
    for command in [
        ProjectCommand::CompleteStart { request: 2 },
        ProjectCommand::FailStart {
            request: 2,
            reason: domain::FailureReason::new("late timeout"),
        },
    ] {
        let outcome = run(&bus, project_id, command).await;
        assert!(
            matches!(
                outcome,
                Err(CommandError::Rejected(ProjectError::RequestNotPending {
                    request: 2,
                    ..
                }))
            ),
            "{outcome:?}"
        );
    }
    assert_eq!(db.event_count().await, before);
    assert_eq!(hub.project(&id).await["status"], json!("RUNNING"));
}
