//! Concurrent requests against one hub: exactly one winner where one is
//! allowed, clear codes for the losers, and nothing shared by accident.

use std::collections::HashSet;

use futures::future::join_all;
use hub_tests::graphql::{data, view};
use hub_tests::ops::{self, payload};
use hub_tests::views::Event;
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

/// Splits answers into successes (the payload project of `field`) and
/// error codes.
fn outcomes(answers: &[Value], field: &str) -> (Vec<Value>, Vec<String>) {
    let mut won = Vec::new();
    let mut codes = Vec::new();
    for body in answers {
        match hub_tests::hub::error_code(body) {
            Some(code) => codes.push(code.to_owned()),
            None => won.push(payload(body, field).clone()),
        }
    }
    (won, codes)
}

/// `eventType`s of the project's history.
/// The project's history as the event log has it, once it holds `len`
/// events (the event log is its own consumer and may trail the `projects`
/// read model that `wait_for_status` watches).
async fn history_of(hub: &TestHub, id: &str, len: usize) -> Vec<String> {
    hub_tests::wait_until(
        "the event log to hold the project's events",
        std::time::Duration::from_secs(15),
        || async {
            let events = history(hub, id).await;
            (events.len() >= len).then_some(events)
        },
    )
    .await
}

async fn history(hub: &TestHub, id: &str) -> Vec<String> {
    let body = hub.graphql(ops::HISTORY, json!({ "id": id })).await;
    let events: Vec<Event> = view(&data(&body, "project")["history"]);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event.sequence,
            i64::try_from(i + 1).unwrap(),
            "sequences have no gaps: {body}"
        );
    }
    events.into_iter().map(|event| event.event_type).collect()
}

#[tokio::test]
async fn concurrent_creates_of_one_name_leave_exactly_one_project() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let create = json!({ "name": "Contested", "path": "/srv/c" });

    let answers = join_all((0..8).map(|_| hub.graphql(ops::CREATE, create.clone()))).await;

    let (won, codes) = outcomes(&answers, "createProject");
    assert_eq!(won.len(), 1, "one create wins: {answers:?}");
    assert_eq!(codes, vec!["NAME_TAKEN"; 7], "{answers:?}");
    let stats = hub.stats().await;
    assert_eq!(stats["total"], 1);
    let page = hub
        .graphql("{ projects { edges { node { id slug } } } }", json!({}))
        .await;
    let edges = data(&page, "projects")["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{page}");
    assert_eq!(edges[0]["node"]["id"], won[0]["id"]);
    assert_eq!(db.event_count().await, 1);
}

#[tokio::test]
async fn concurrent_starts_of_one_project_record_a_single_start() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Raced", "/srv/r").await;

    let answers = join_all((0..8).map(|_| hub.start_project(&id, None))).await;

    let (won, codes) = outcomes(&answers, "startProject");
    assert_eq!(won.len(), 1, "one start wins: {answers:?}");
    assert_starting_or_started(&won[0]);
    assert_eq!(codes.len(), 7);
    assert!(
        codes
            .iter()
            .all(|c| c == "INVALID_TRANSITION" || c == "CONFLICT"),
        "{codes:?}"
    );
    assert_eq!(hub.wait_for_status(&id, "RUNNING").await["version"], 3);
    assert_eq!(
        history_of(&hub, &id, 3).await,
        ["ProjectCreated", "ProjectStartRequested", "ProjectStarted"]
    );
}

/// The winner of a start answers with its request (STARTING, version 2), or
/// with its completion if the orchestrator was that quick.
fn assert_starting_or_started(project: &Value) {
    let seen = (project["version"].as_i64(), project["status"].as_str());
    assert!(
        seen == (Some(2), Some("STARTING")) || seen == (Some(3), Some("RUNNING")),
        "{project}"
    );
}

#[tokio::test]
async fn concurrent_starts_expecting_one_version_leave_one_winner_and_conflicts() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Guarded Race", "/srv/g").await;

    let answers = join_all((0..8).map(|_| hub.start_project(&id, Some(1)))).await;

    let (won, codes) = outcomes(&answers, "startProject");
    assert_eq!(won.len(), 1, "one start wins: {answers:?}");
    assert_starting_or_started(&won[0]);
    assert_eq!(codes, vec!["CONFLICT"; 7], "{answers:?}");
    hub.wait_for_status(&id, "RUNNING").await;
    assert_eq!(
        history_of(&hub, &id, 3).await,
        ["ProjectCreated", "ProjectStartRequested", "ProjectStarted"]
    );
}

#[tokio::test]
async fn concurrent_creates_of_different_names_all_succeed_with_disjoint_ports() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;

    let answers = join_all((0..20).map(|i| {
        let create = json!({ "name": format!("Parallel {i}"), "path": format!("/srv/{i}") });
        let hub = &hub;
        async move { hub.graphql(ops::CREATE, create).await }
    }))
    .await;

    let (won, codes) = outcomes(&answers, "createProject");
    assert!(codes.is_empty(), "every create succeeds: {codes:?}");
    let mut ports = Vec::new();
    for project in &won {
        for kind in ["backend", "frontend", "postgres", "redis"] {
            ports.push(project["ports"][kind].as_i64().expect("a port"));
        }
    }
    assert_eq!(ports.len(), 80);
    let unique: HashSet<i64> = ports.iter().copied().collect();
    assert_eq!(unique.len(), 80, "no port is shared: {ports:?}");
    let names: HashSet<&str> = won.iter().map(|p| p["slug"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 20);
    assert_eq!(hub.stats().await["total"], 20);
}

#[tokio::test]
async fn every_mutation_answers_with_its_own_write_never_a_stale_one() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Flip Flop", "/srv/f").await;

    // Each request is one event and its completion another; the answer is
    // the request, or its completion if the orchestrator was already done,
    // never what came before the request.
    let mut version = 1;
    for i in 0..20 {
        let (field, body, requested, done) = if i % 2 == 0 {
            let body = hub.start_project(&id, None).await;
            ("startProject", body, "STARTING", "RUNNING")
        } else {
            let body = hub.stop_project(&id, None).await;
            ("stopProject", body, "STOPPING", "STOPPED")
        };
        let project = payload(&body, field);
        let seen = (project["version"].clone(), project["status"].clone());
        assert!(
            seen == (json!(version + 1), json!(requested))
                || seen == (json!(version + 2), json!(done)),
            "step {i}: {body}"
        );
        let read = hub.project(&id).await;
        assert!(
            read["version"].as_i64() >= Some(version + 1),
            "a query right after sees the write: {read}"
        );
        version = hub.wait_for_status(&id, done).await["version"]
            .as_i64()
            .unwrap();
    }
    assert_eq!(version, 41);
}
