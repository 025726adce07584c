//! The whole project lifecycle through GraphQL over HTTP: mutations answer
//! with their own result, and every query sees it.

use chrono::{DateTime, Utc};
use hub_tests::ops::{self, payload};
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a timestamp, got {value}"))
        .parse()
        .expect("an RFC 3339 timestamp")
}

/// Creates a project through `createProject`; returns the payload project.
async fn create(hub: &TestHub, name: &str) -> Value {
    let body = hub
        .graphql(ops::CREATE, json!({ "name": name, "path": "/srv/flow" }))
        .await;
    payload(&body, "createProject").clone()
}

#[tokio::test]
async fn each_mutation_answers_with_the_project_as_it_changed() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;

    let created = create(&hub, "My Shop").await;
    assert_eq!(created["version"], 1);
    assert_eq!(created["status"], "STOPPED");
    assert_eq!(created["slug"], "my-shop");
    assert_eq!(created["path"], "/srv/flow");
    assert!(created["lastStartedAt"].is_null() && created["lastStoppedAt"].is_null());
    let id = created["id"].as_str().unwrap().to_owned();

    // Starting answers with the request (STARTING at version 2), unless the
    // orchestrator (noop) was already done by the time the answer was read.
    let starting = payload(&hub.start_project(&id, None).await, "startProject").clone();
    assert!(
        [(json!(2), json!("STARTING")), (json!(3), json!("RUNNING"))]
            .contains(&(starting["version"].clone(), starting["status"].clone())),
        "{starting}"
    );
    let started = hub.wait_for_status(&id, "RUNNING").await;
    assert_eq!(started["version"], 3);
    assert!(time(&started["lastStartedAt"]) >= time(&created["createdAt"]));

    let stopping = payload(&hub.stop_project(&id, None).await, "stopProject").clone();
    assert!(
        [(json!(4), json!("STOPPING")), (json!(5), json!("STOPPED"))]
            .contains(&(stopping["version"].clone(), stopping["status"].clone())),
        "{stopping}"
    );
    let stopped = hub.wait_for_status(&id, "STOPPED").await;
    assert_eq!(stopped["version"], 5);
    assert!(time(&stopped["lastStoppedAt"]) >= time(&started["lastStartedAt"]));
    assert_eq!(stopped["lastStartedAt"], started["lastStartedAt"]);

    let renamed = payload(
        &hub.rename_project(&id, "Corner Café").await,
        "renameProject",
    )
    .clone();
    assert_eq!(renamed["version"], 6);
    assert_eq!(renamed["name"], "Corner Café");
    assert_eq!(renamed["slug"], "corner-cafe");
    assert_eq!(
        renamed["ports"], created["ports"],
        "a rename keeps the ports"
    );

    let deleted = payload(&hub.delete_project(&id).await, "deleteProject").clone();
    assert_eq!(deleted["version"], 7);
    assert_eq!(deleted["status"], "DELETED");
    assert_eq!(deleted["id"], json!(id));
}

#[tokio::test]
async fn a_project_is_found_by_id_and_by_its_current_slug() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let created = create(&hub, "Find Me").await;
    let id = created["id"].as_str().unwrap();

    assert_eq!(hub.project(id).await, created);
    let by_slug = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "find-me" }))
        .await;
    assert_eq!(by_slug["data"]["project"], created);

    payload(&hub.rename_project(id, "Found").await, "renameProject");
    let old = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "find-me" }))
        .await;
    assert!(old["data"]["project"].is_null(), "{old}");
    let new = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "found" }))
        .await;
    assert_eq!(new["data"]["project"]["id"], json!(id));
    assert_eq!(new["data"]["project"]["version"], 2);

    let unknown = hub
        .graphql(ops::PROJECT_BY_ID, json!({ "id": uuid::Uuid::new_v4() }))
        .await;
    assert!(unknown["errors"].is_null() && unknown["data"]["project"].is_null());
}

const PAGE: &str = "query($first: Int, $after: String, $status: ProjectStatus, $search: String) { \
    projects(first: $first, after: $after, status: $status, search: $search) { \
      pageInfo { hasNextPage endCursor } edges { cursor node { id name status } } } }";

async fn page(hub: &TestHub, variables: Value) -> (Vec<String>, bool, Option<String>) {
    let body = hub.graphql(PAGE, variables).await;
    let connection = &body["data"]["projects"];
    let edges = connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("projects failed: {body}"));
    let ids = edges
        .iter()
        .map(|edge| edge["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    let has_next = connection["pageInfo"]["hasNextPage"].as_bool().unwrap();
    let end = connection["pageInfo"]["endCursor"]
        .as_str()
        .map(str::to_owned);
    (ids, has_next, end)
}

#[tokio::test]
async fn paging_through_projects_lists_each_exactly_once_in_creation_order() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let mut created = Vec::new();
    for i in 1..=5 {
        created.push(hub.create_project(&format!("Paged {i}"), "/srv/p").await);
    }

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (ids, has_next, end) = page(&hub, json!({ "first": 2, "after": after })).await;
        pages.push((ids.len(), has_next));
        seen.extend(ids);
        if !has_next {
            break;
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
        after = end;
    }
    assert_eq!(pages, vec![(2, true), (2, true), (1, false)]);
    assert_eq!(seen, created);

    let (again, _, _) = page(&hub, json!({ "first": 5 })).await;
    assert_eq!(again, created, "the order is stable");
    let (none, has_next, _) = page(&hub, json!({ "first": 0 })).await;
    assert!(none.is_empty() && has_next);
}

#[tokio::test]
async fn projects_are_filtered_by_status_and_by_search_text() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let alpha = hub.create_project("Alpha Site", "/srv/a").await;
    let beta = hub.create_project("Beta Site", "/srv/b").await;
    let gamma = hub.create_project("Gamma", "/srv/c").await;
    hub.start_and_wait(&beta).await;
    payload(&hub.delete_project(&gamma).await, "deleteProject");

    let ids = |variables: Value| {
        let hub = &hub;
        async move { page(hub, variables).await.0 }
    };
    assert_eq!(ids(json!({})).await, vec![alpha.clone(), beta.clone()]);
    assert_eq!(
        ids(json!({ "status": "RUNNING" })).await,
        vec![beta.clone()]
    );
    assert_eq!(
        ids(json!({ "status": "STOPPED" })).await,
        vec![alpha.clone()]
    );
    assert_eq!(ids(json!({ "status": "DELETED" })).await, vec![gamma]);
    assert_eq!(
        ids(json!({ "search": "SITE" })).await,
        vec![alpha.clone(), beta]
    );
    assert_eq!(ids(json!({ "search": "alpha-s" })).await, vec![alpha]);
    assert!(
        ids(json!({ "search": "%" })).await.is_empty(),
        "% is literal"
    );
    assert!(
        ids(json!({ "search": "_" })).await.is_empty(),
        "_ is literal"
    );
}

#[tokio::test]
async fn project_stats_count_projects_per_status() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let zero = json!({ "total": 0, "running": 0, "stopped": 0, "starting": 0,
                       "stopping": 0, "errors": 0, "deleted": 0 });
    assert_eq!(hub.stats().await, zero);

    let a = hub.create_project("Stat A", "/srv/a").await;
    let b = hub.create_project("Stat B", "/srv/b").await;
    hub.create_project("Stat C", "/srv/c").await;
    hub.start_and_wait(&a).await;
    payload(&hub.delete_project(&b).await, "deleteProject");

    assert_eq!(
        hub.stats().await,
        json!({ "total": 2, "running": 1, "stopped": 1, "starting": 0,
                "stopping": 0, "errors": 0, "deleted": 1 })
    );
}

#[tokio::test]
async fn a_deleted_project_frees_its_name_and_stays_readable_by_id_only() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let first = create(&hub, "Reused Name").await;
    let id = first["id"].as_str().unwrap();
    payload(&hub.delete_project(id).await, "deleteProject");

    let gone = hub.project(id).await;
    assert_eq!(gone["status"], "DELETED");
    assert_eq!(gone["slug"], "reused-name");
    let by_slug = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "reused-name" }))
        .await;
    assert!(by_slug["data"]["project"].is_null(), "{by_slug}");

    let second = create(&hub, "Reused Name").await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["slug"], "reused-name");
    let by_slug = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "reused-name" }))
        .await;
    assert_eq!(by_slug["data"]["project"]["id"], second["id"]);
}

#[tokio::test]
async fn every_mutation_on_a_deleted_project_is_an_invalid_transition() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Doomed", "/srv/d").await;
    payload(&hub.delete_project(&id).await, "deleteProject");

    let answers = [
        hub.start_project(&id, None).await,
        hub.stop_project(&id, None).await,
        hub.restart_project(&id, None).await,
        hub.rename_project(&id, "Revived").await,
        hub.delete_project(&id).await,
    ];
    for body in &answers {
        assert_eq!(
            hub_tests::hub::error_code(body),
            Some("INVALID_TRANSITION"),
            "{body}"
        );
    }
    assert_eq!(hub.project(&id).await["version"], 2, "nothing was recorded");
}
