//! Concurrent requests against one hub: exactly one winner where one is
//! allowed, clear codes for the losers, and nothing shared by accident.

use std::collections::HashSet;

use futures::future::join_all;
use hub_tests::ops::{self, payload};
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
async fn history(hub: &TestHub, id: &str) -> Vec<String> {
    let query = "query($id: ID!) { project(id: $id) { history { eventType sequence } } }";
    let body = hub.graphql(query, json!({ "id": id })).await;
    let events = body["data"]["project"]["history"]
        .as_array()
        .unwrap_or_else(|| panic!("history failed: {body}"));
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event["sequence"],
            json!(i + 1),
            "sequences have no gaps: {body}"
        );
    }
    events
        .iter()
        .map(|event| event["eventType"].as_str().unwrap().to_owned())
        .collect()
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
    let edges = page["data"]["projects"]["edges"].as_array().unwrap();
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
    assert_eq!(
        (won[0]["version"].as_i64(), won[0]["status"].as_str()),
        (Some(2), Some("RUNNING"))
    );
    assert_eq!(codes.len(), 7);
    assert!(
        codes
            .iter()
            .all(|c| c == "INVALID_TRANSITION" || c == "CONFLICT"),
        "{codes:?}"
    );
    assert_eq!(
        history(&hub, &id).await,
        ["ProjectCreated", "ProjectStarted"]
    );
    assert_eq!(hub.project(&id).await["version"], 2);
}

#[tokio::test]
async fn concurrent_starts_expecting_one_version_leave_one_winner_and_conflicts() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Guarded Race", "/srv/g").await;

    let answers = join_all((0..8).map(|_| hub.start_project(&id, Some(1)))).await;

    let (won, codes) = outcomes(&answers, "startProject");
    assert_eq!(won.len(), 1, "one start wins: {answers:?}");
    assert_eq!(won[0]["version"], 2);
    assert_eq!(codes, vec!["CONFLICT"; 7], "{answers:?}");
    assert_eq!(
        history(&hub, &id).await,
        ["ProjectCreated", "ProjectStarted"]
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

    let mut version = 1;
    for i in 0..20 {
        let (field, body, status) = if i % 2 == 0 {
            (
                "startProject",
                hub.start_project(&id, None).await,
                "RUNNING",
            )
        } else {
            ("stopProject", hub.stop_project(&id, None).await, "STOPPED")
        };
        let project = payload(&body, field);
        assert_eq!(project["version"], json!(version + 1), "step {i}: {body}");
        assert_eq!(project["status"], status, "step {i}: {body}");
        version += 1;
        let read = hub.project(&id).await;
        assert_eq!(
            read["version"],
            json!(version),
            "a query right after sees the write"
        );
    }
    assert_eq!(version, 21);
}
