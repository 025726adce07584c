//! Orchestration with the default `noop` orchestrator: requests answer at
//! once, the process manager completes them, and every reader sees the
//! request and its completion.

use std::time::Duration;

use hub_tests::graphql::{data, first_error, view};
use hub_tests::jetstream::health_report;
use hub_tests::ops::{self, payload};
use hub_tests::views::{Event, LiveEvent};
use hub_tests::ws::{Protocol, WsClient, EVENTS, PROJECT_CHANGED};
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

const ARRIVES: Duration = Duration::from_secs(15);

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a timestamp, got {value}"))
        .parse()
        .expect("an RFC 3339 timestamp")
}

/// `eventType`s of the project's history.
async fn history(hub: &TestHub, id: &str) -> Vec<String> {
    let body = hub.graphql(ops::HISTORY, json!({ "id": id })).await;
    let history: Vec<Event> = view(&data(&body, "project")["history"]);
    history.into_iter().map(|event| event.event_type).collect()
}

#[tokio::test]
async fn a_started_project_is_starting_then_running_with_the_noop_orchestrator() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Noop Start", "/srv/noop").await;

    let body = hub.start_project(&id, None).await;
    let answered = payload(&body, "startProject");
    // The answer is the request; the noop completion may already be there.
    let seen = (answered["status"].clone(), answered["version"].clone());
    assert!(
        seen == (json!("STARTING"), json!(2)) || seen == (json!("RUNNING"), json!(3)),
        "{body}"
    );

    let running = hub.wait_for_status(&id, "RUNNING").await;
    assert_eq!(running["version"], 3);
    assert!(running["lastStartedAt"].is_string(), "{running}");
    assert!(running["lastError"].is_null(), "{running}");
    assert_eq!(
        history(&hub, &id).await,
        ["ProjectCreated", "ProjectStartRequested", "ProjectStarted"]
    );
    assert_eq!(
        hub.stats().await,
        json!({ "total": 1, "running": 1, "stopped": 0, "starting": 0,
                "stopping": 0, "errors": 0, "deleted": 0 })
    );
}

#[tokio::test]
async fn a_restart_stops_and_starts_again_through_one_request_each() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Noop Restart", "/srv/noop").await;
    let started = hub.start_and_wait(&id).await;

    let body = hub.restart_project(&id, Some(3)).await;
    let answered = payload(&body, "restartProject");
    assert!(answered["version"].as_i64() >= Some(4), "{body}");
    // 4 restart requested, 5 stopped, 6 start requested, 7 started.
    let restarted = hub_tests::wait_until("the restart to complete", ARRIVES, || async {
        let project = hub.project(&id).await;
        (project["version"] == 7).then_some(project)
    })
    .await;
    assert_eq!(restarted["status"], "RUNNING");
    assert!(restarted["lastStoppedAt"].is_string(), "{restarted}");
    assert!(time(&restarted["lastStartedAt"]) > time(&started["lastStartedAt"]));
    assert_eq!(
        history(&hub, &id).await,
        [
            "ProjectCreated",
            "ProjectStartRequested",
            "ProjectStarted",
            "ProjectRestartRequested",
            "ProjectStopped",
            "ProjectStartRequested",
            "ProjectStarted",
        ]
    );
}

#[tokio::test]
async fn a_project_stopped_through_the_orchestrator_can_be_deleted() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Noop Stop", "/srv/noop").await;
    hub.start_and_wait(&id).await;
    let stopped = hub.stop_and_wait(&id).await;
    assert_eq!(stopped["version"], 5);
    assert!(stopped["lastStoppedAt"].is_string(), "{stopped}");
    let deleted = payload(&hub.delete_project(&id).await, "deleteProject").clone();
    assert_eq!(deleted["status"], "DELETED");
    assert_eq!(deleted["version"], 6);
}

#[tokio::test]
async fn subscribers_see_the_request_and_its_completion() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Noop Live", "/srv/noop").await;
    let mut changes = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    changes
        .subscribe("changes", PROJECT_CHANGED, json!({ "id": id }))
        .await;
    let mut events = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    events
        .subscribe(
            "events",
            EVENTS,
            json!({ "after": "0", "filter": { "aggregateId": id } }),
        )
        .await;
    let created: LiveEvent = view(&events.next_data("events", ARRIVES).await["events"]);
    assert_eq!(created.event_type, "ProjectCreated");
    // A rename proves the change subscription is live before the start.
    let mut n = 0;
    changes
        .wait_live("changes", || {
            n += 1;
            let (hub, id, name) = (&hub, &id, format!("Noop Live {n}"));
            async move {
                hub.rename_project(id, &name).await;
            }
        })
        .await;

    let body = hub.start_project(&id, None).await;
    assert!(body["errors"].is_null(), "{body}");
    let mut last = Value::Null;
    while last["status"] != "RUNNING" {
        let data = changes.next_data("changes", ARRIVES).await;
        last = data["projectChanged"].clone();
        assert!(
            ["STOPPED", "STARTING", "RUNNING"].contains(&last["status"].as_str().unwrap()),
            "{last}"
        );
    }
    let mut types = Vec::new();
    while types.last().map(String::as_str) != Some("ProjectStarted") {
        let event: LiveEvent = view(&events.next_data("events", ARRIVES).await["events"]);
        types.push(event.event_type);
    }
    let renames = types.iter().filter(|t| *t == "ProjectRenamed").count();
    assert_eq!(
        types[renames..],
        ["ProjectStartRequested", "ProjectStarted"],
        "{types:?}"
    );
}

#[tokio::test]
async fn the_process_manager_reports_in_health_like_every_feed_consumer() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Noop Health", "/srv/noop").await;
    hub.start_and_wait(&id).await;
    let report = hub_tests::wait_until("the orchestrator to have no lag", ARRIVES, || async {
        let report = health_report(&hub).await;
        (report.consumer("project_orchestrator").lag == Some(0)).then_some(report)
    })
    .await;
    let consumer = report.consumer("project_orchestrator");
    assert!(consumer.active_here, "{report:?}");
    assert_eq!(consumer.consecutive_failures, 0, "{report:?}");
}

#[tokio::test]
async fn starting_a_project_twice_in_a_row_records_one_request() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Noop Twice", "/srv/noop").await;
    payload(&hub.start_project(&id, None).await, "startProject");
    let again = hub
        .graphql_response(ops::START, json!({ "id": id }), &[])
        .await;
    assert_eq!(again.code(), Some("INVALID_TRANSITION"), "{}", again.body);
    let message = first_error(&again.body).message;
    assert!(
        message.contains("already starting") || message.contains("already running"),
        "{message}"
    );
    hub.wait_for_status(&id, "RUNNING").await;
    assert_eq!(
        history(&hub, &id).await,
        ["ProjectCreated", "ProjectStartRequested", "ProjectStarted"]
    );
}
