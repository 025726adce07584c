//! The `shell` orchestrator through the whole hub: commands see the
//! project, failures and timeouts put it in ERROR with a reason, and
//! transitional states show while a command runs.

use std::time::Duration;

use hub_tests::graphql::first_error;
use hub_tests::ops::{self, payload};
use hub_tests::orchestration::{process_ended, shell_config, ScratchDir};
use hub_tests::ws::{Protocol, WsClient, PROJECT_CHANGED};
use hub_tests::{wait_until, TestDb, TestHub};
use serde_json::json;

/// A directory that exists: commands run in the project's directory, and
/// a start in a missing one fails before running anything.
const EXISTING_DIR: &str = "/tmp";

const ARRIVES: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_failing_start_command_puts_the_project_in_error_with_its_stderr_tail() {
    let db = TestDb::create().await;
    let start =
        "echo 'preparing' >&2; for i in $(seq 1 30); do echo \"problem $i\" >&2; done; exit 3";
    let hub = TestHub::start_with(shell_config(db.url(), start, "true", 60)).await;
    let id = hub.create_project("Broken Stack", EXISTING_DIR).await;

    payload(&hub.start_project(&id, None).await, "startProject");
    let failed = hub.wait_for_status(&id, "ERROR").await;
    assert_eq!(failed["version"], 3);
    let error = failed["lastError"].as_str().expect("a last error");
    assert!(
        error.starts_with("the start command exited with code 3: "),
        "{error}"
    );
    assert!(error.ends_with("problem 30"), "{error}");
    assert!(error.contains("problem 11\n"), "the last 20 lines: {error}");
    assert!(
        !error.contains("problem 10\n"),
        "only the last 20 lines: {error}"
    );
    assert!(!error.contains("preparing"), "{error}");
    assert!(failed["lastStartedAt"].is_null(), "{failed}");
    assert_eq!(hub.stats().await["errors"], 1);

    // From ERROR a project can be started again (and here fails again).
    payload(&hub.start_project(&id, None).await, "startProject");
    wait_until("the second start to fail", ARRIVES, || async {
        let project = hub.project(&id).await;
        (project["version"] == 5 && project["status"] == "ERROR").then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_command_sees_the_projects_environment_and_runs_in_its_directory() {
    let db = TestDb::create().await;
    let dir = ScratchDir::create();
    let start = "env | grep -E '^(HUB_|DATABASE_URL=)' | sort > env.txt; pwd > cwd.txt";
    let hub = TestHub::start_with(shell_config(db.url(), start, "true", 60)).await;
    let id = hub.create_project("Env Check", dir.as_str()).await;
    let project = hub.start_and_wait(&id).await;

    let env = dir.lines("env.txt");
    let ports = &project["ports"];
    for expected in [
        "HUB_ACTION=start".to_owned(),
        format!("HUB_PROJECT_ID={id}"),
        "HUB_PROJECT_NAME=Env Check".to_owned(),
        "HUB_PROJECT_SLUG=env-check".to_owned(),
        format!("HUB_PROJECT_PATH={}", dir.as_str()),
        format!("HUB_PORT_BACKEND={}", ports["backend"]),
        format!("HUB_PORT_FRONTEND={}", ports["frontend"]),
        format!("HUB_PORT_POSTGRES={}", ports["postgres"]),
        format!("HUB_PORT_REDIS={}", ports["redis"]),
    ] {
        assert!(env.contains(&expected), "{expected} in {env:?}");
    }
    assert!(
        !env.iter().any(|line| line.starts_with("DATABASE_URL=")),
        "the hub's database URL is not handed to project commands: {env:?}"
    );
    let cwd = std::fs::canonicalize(dir.lines("cwd.txt")[0].clone()).unwrap();
    assert_eq!(cwd, std::fs::canonicalize(dir.path()).unwrap());
}

#[tokio::test]
async fn a_hanging_start_command_times_out_and_its_processes_are_killed() {
    let db = TestDb::create().await;
    let dir = ScratchDir::create();
    let start = format!("sleep 300 & echo $! > '{}'; wait", dir.file("sleeper.pid"));
    let hub = TestHub::start_with(shell_config(db.url(), &start, "true", 1)).await;
    let id = hub.create_project("Hanging", EXISTING_DIR).await;

    payload(&hub.start_project(&id, None).await, "startProject");
    let failed = hub.wait_for_status(&id, "ERROR").await;
    let error = failed["lastError"].as_str().expect("a last error");
    assert!(
        error.contains("did not finish within 1 s") && error.contains("cancelled"),
        "{error}"
    );
    let pid: u32 = dir.lines("sleeper.pid")[0].parse().expect("a pid");
    wait_until(
        "the command's background process to be killed",
        ARRIVES,
        || async { process_ended(pid).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_failing_stop_puts_the_project_in_error_and_it_can_be_stopped_again() {
    let db = TestDb::create().await;
    let dir = ScratchDir::create();
    let stop = format!(
        "if [ -f '{}' ]; then exit 0; fi; echo 'the stack refuses to stop' >&2; exit 1",
        dir.file("stoppable")
    );
    let hub = TestHub::start_with(shell_config(db.url(), "true", &stop, 60)).await;
    let id = hub.create_project("Sticky", EXISTING_DIR).await;
    hub.start_and_wait(&id).await;

    payload(&hub.stop_project(&id, None).await, "stopProject");
    let failed = hub.wait_for_status(&id, "ERROR").await;
    assert_eq!(
        failed["lastError"],
        "the stop command exited with code 1: the stack refuses to stop"
    );

    dir.touch("stoppable");
    let stopped = hub.stop_and_wait(&id).await;
    assert!(
        stopped["lastError"].is_null(),
        "a success clears it: {stopped}"
    );
    assert_eq!(stopped["version"], 7);
}

#[tokio::test]
async fn a_restart_whose_stop_fails_does_not_start() {
    let db = TestDb::create().await;
    let dir = ScratchDir::create();
    let start = format!("echo started >> '{}'", dir.file("starts.log"));
    let stop = "echo 'cannot stop' >&2; exit 1";
    let hub = TestHub::start_with(shell_config(db.url(), &start, stop, 60)).await;
    let id = hub.create_project("No Restart", EXISTING_DIR).await;
    hub.start_and_wait(&id).await;

    payload(&hub.restart_project(&id, None).await, "restartProject");
    let failed = hub.wait_for_status(&id, "ERROR").await;
    assert_eq!(failed["version"], 5, "restart requested, stop failed");
    assert!(
        failed["lastError"]
            .as_str()
            .unwrap()
            .contains("cannot stop"),
        "{failed}"
    );
    assert_eq!(dir.lines("starts.log").len(), 1, "only the first start ran");
}

#[tokio::test]
async fn project_changed_shows_starting_then_running_while_the_command_runs() {
    let db = TestDb::create().await;
    let dir = ScratchDir::create();
    let start = format!(
        "while [ ! -f '{}' ]; do sleep 0.05; done",
        dir.file("release")
    );
    let hub = TestHub::start_with(shell_config(db.url(), &start, "true", 60)).await;
    let id = hub.create_project("Slow Start", EXISTING_DIR).await;
    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    client
        .subscribe("changes", PROJECT_CHANGED, json!({ "id": id }))
        .await;
    let mut n = 0;
    client
        .wait_live("changes", || {
            n += 1;
            let (hub, id, name) = (&hub, &id, format!("Slow Start {n}"));
            async move {
                hub.rename_project(id, &name).await;
            }
        })
        .await;

    let body = hub.start_project(&id, None).await;
    let answered = payload(&body, "startProject");
    assert_eq!(answered["status"], "STARTING", "{body}");
    let request_version = answered["version"].as_i64().unwrap();
    let starting = loop {
        let data = client.next_data("changes", ARRIVES).await;
        if data["projectChanged"]["status"] != "STOPPED" {
            break data["projectChanged"].clone();
        }
    };
    assert_eq!(starting["status"], "STARTING");
    assert_eq!(starting["version"], request_version);

    // While it starts, everything but a rename is refused, with a clear message.
    for query in [ops::START, ops::STOP, ops::RESTART, ops::DELETE] {
        let answer = hub.graphql_response(query, json!({ "id": id }), &[]).await;
        assert_eq!(answer.code(), Some("INVALID_TRANSITION"), "{}", answer.body);
        assert_eq!(
            first_error(&answer.body).message,
            "the project is already starting; wait until it is RUNNING (or ERROR) and try again"
        );
    }

    dir.touch("release");
    let running = client.next_data("changes", ARRIVES).await["projectChanged"].clone();
    assert_eq!(running["status"], "RUNNING");
    assert_eq!(running["version"], request_version + 1);
}

#[tokio::test]
async fn a_long_start_does_not_hold_up_another_projects_start() {
    let db = TestDb::create().await;
    let dir = ScratchDir::create();
    let start = format!(
        "if [ \"$HUB_PROJECT_SLUG\" = slow ]; then while [ ! -f '{}' ]; do sleep 0.05; done; fi",
        dir.file("release")
    );
    let hub = TestHub::start_with(shell_config(db.url(), &start, "true", 60)).await;
    let slow = hub.create_project("Slow", EXISTING_DIR).await;
    let quick = hub.create_project("Quick", EXISTING_DIR).await;

    payload(&hub.start_project(&slow, None).await, "startProject");
    hub.start_and_wait(&quick).await;
    assert_eq!(hub.project(&slow).await["status"], "STARTING");

    dir.touch("release");
    hub.wait_for_status(&slow, "RUNNING").await;
}
