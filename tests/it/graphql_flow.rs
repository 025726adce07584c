//! The whole project lifecycle through GraphQL over HTTP: mutations answer
//! with their own result, and every query sees it.

use hub_tests::graphql::{data, data_as, view};
use hub_tests::ops::{self, payload};
use hub_tests::views::{Connection, Project, ProjectStatus};
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

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

    let created: Project = view(&create(&hub, "My Shop").await);
    assert_eq!(created.version, 1);
    assert_eq!(created.status, ProjectStatus::Stopped);
    assert_eq!(created.slug, "my-shop");
    assert_eq!(created.path, "/srv/flow");
    assert!(created.last_started_at.is_none() && created.last_stopped_at.is_none());
    let id = created.id.clone();

    // Starting answers with the request (STARTING at version 2), unless the
    // orchestrator (noop) was already done by the time the answer was read.
    let starting: Project = view(payload(&hub.start_project(&id, None).await, "startProject"));
    assert!(
        [(2, ProjectStatus::Starting), (3, ProjectStatus::Running)]
            .contains(&(starting.version, starting.status)),
        "{starting:?}"
    );
    let started: Project = view(&hub.wait_for_status(&id, "RUNNING").await);
    assert_eq!(started.version, 3);
    let started_at = started.last_started_at.expect("a start time");
    assert!(started_at >= created.created_at);

    let stopping: Project = view(payload(&hub.stop_project(&id, None).await, "stopProject"));
    assert!(
        [(4, ProjectStatus::Stopping), (5, ProjectStatus::Stopped)]
            .contains(&(stopping.version, stopping.status)),
        "{stopping:?}"
    );
    let stopped: Project = view(&hub.wait_for_status(&id, "STOPPED").await);
    assert_eq!(stopped.version, 5);
    assert!(stopped.last_stopped_at.expect("a stop time") >= started_at);
    assert_eq!(stopped.last_started_at, Some(started_at));

    let renamed: Project = view(payload(
        &hub.rename_project(&id, "Corner Café").await,
        "renameProject",
    ));
    assert_eq!(renamed.version, 6);
    assert_eq!(renamed.name, "Corner Café");
    assert_eq!(renamed.slug, "corner-cafe");
    assert_eq!(renamed.ports, created.ports, "a rename keeps the ports");

    let deleted: Project = view(payload(&hub.delete_project(&id).await, "deleteProject"));
    assert_eq!(deleted.version, 7);
    assert_eq!(deleted.status, ProjectStatus::Deleted);
    assert_eq!(deleted.id, id);
}

#[tokio::test]
async fn a_project_is_found_by_id_and_by_its_current_slug() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let created = create(&hub, "Find Me").await;
    let id = created["id"].as_str().unwrap();

    // Compared as JSON: every field, exactly as the mutation answered it.
    assert_eq!(hub.project(id).await, created);
    let by_slug = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "find-me" }))
        .await;
    assert_eq!(data(&by_slug, "project"), &created);

    payload(&hub.rename_project(id, "Found").await, "renameProject");
    let old = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "find-me" }))
        .await;
    assert!(data(&old, "project").is_null(), "{old}");
    let new = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "found" }))
        .await;
    let new: Project = data_as(&new, "project");
    assert_eq!(new.id, id);
    assert_eq!(new.version, 2);

    let unknown = hub
        .graphql(ops::PROJECT_BY_ID, json!({ "id": uuid::Uuid::new_v4() }))
        .await;
    assert!(data(&unknown, "project").is_null(), "{unknown}");
}

const PAGE: &str = "query($first: Int, $after: String, $status: ProjectStatus, $search: String) { \
    projects(first: $first, after: $after, status: $status, search: $search) { \
      pageInfo { hasNextPage endCursor } edges { cursor node { id name status } } } }";

async fn page(hub: &TestHub, variables: Value) -> (Vec<String>, bool, Option<String>) {
    let body = hub.graphql(PAGE, variables).await;
    let page: Connection<Value> = data_as(&body, "projects");
    let ids = page
        .nodes()
        .map(|node| node["id"].as_str().expect("an id").to_owned())
        .collect();
    (ids, page.page_info.has_next_page, page.page_info.end_cursor)
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

    let gone: Project = view(&hub.project(id).await);
    assert_eq!(gone.status, ProjectStatus::Deleted);
    assert_eq!(gone.slug, "reused-name");
    let by_slug = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "reused-name" }))
        .await;
    assert!(data(&by_slug, "project").is_null(), "{by_slug}");

    let second: Project = view(&create(&hub, "Reused Name").await);
    assert_ne!(second.id, id);
    assert_eq!(second.slug, "reused-name");
    let by_slug = hub
        .graphql(ops::PROJECT_BY_SLUG, json!({ "slug": "reused-name" }))
        .await;
    assert_eq!(data_as::<Project>(&by_slug, "project").id, second.id);
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
