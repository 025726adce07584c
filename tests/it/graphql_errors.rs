//! Every error code through the real HTTP server: the right code, a status
//! below 500, and a store left as it was.

use hub_tests::graphql::{data, first_error, view};
use hub_tests::ops::{self, payload, Response};
use hub_tests::views::{Event, Project, ProjectStatus};
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

/// Sends an operation expected to fail with `code`; checks the status and
/// that the store is unchanged; returns the answer.
async fn refused(
    db: &TestDb,
    hub: &TestHub,
    query: &str,
    variables: Value,
    code: &str,
) -> Response {
    let before = db.event_count().await;
    let answer = hub.graphql_response(query, variables.clone(), &[]).await;
    assert_eq!(answer.code(), Some(code), "{variables}: {}", answer.body);
    assert!(
        !answer.status.is_server_error(),
        "{variables}: status {}",
        answer.status
    );
    assert!(
        !first_error(&answer.body).message.is_empty(),
        "errors carry a message: {}",
        answer.body
    );
    assert_eq!(
        db.event_count().await,
        before,
        "{variables} changed the store"
    );
    answer
}

/// Fails when a client-facing message leaks database internals.
fn assert_opaque(answer: &Response) {
    let error = first_error(&answer.body);
    let message = error.message.to_lowercase();
    for leak in [
        "sqlx",
        "select",
        "does not exist",
        "postgres",
        "pool",
        "os error",
        "io error",
        "sqlstate",
        "error returned from database",
        "project_stats",
        "deserializ",
    ] {
        assert!(
            !message.contains(leak),
            "the message leaks '{leak}': {message}"
        );
    }
    assert!(!error.extensions.contains_key("exception"), "{error:?}");
}

#[tokio::test]
async fn starting_an_unknown_project_is_not_found() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = uuid::Uuid::new_v4().to_string();
    let answer = refused(&db, &hub, ops::START, json!({ "id": id }), "NOT_FOUND").await;
    assert!(answer.body["data"]["startProject"].is_null());
}

#[tokio::test]
async fn malformed_names_and_paths_are_invalid_input() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let long = "n".repeat(256);
    for name in ["", "   ", long.as_str(), "line\nbreak", "bell\u{7}", "!!!"] {
        let variables = json!({ "name": name, "path": "/srv/x" });
        refused(&db, &hub, ops::CREATE, variables, "INVALID_INPUT").await;
    }
    for path in ["relative/path", "", "/", "/a/../..", "/tab\there"] {
        let variables = json!({ "name": "Fine", "path": path });
        refused(&db, &hub, ops::CREATE, variables, "INVALID_INPUT").await;
    }
    let id = hub.create_project("Fine", "/srv/x").await;
    refused(
        &db,
        &hub,
        ops::RENAME,
        json!({ "id": id, "name": "" }),
        "INVALID_INPUT",
    )
    .await;
    assert_eq!(hub.stats().await["total"], 1);
    assert_eq!(hub.project(&id).await["name"], "Fine");
}

#[tokio::test]
async fn malformed_ids_are_invalid_input() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    for query in [
        ops::START,
        ops::STOP,
        ops::RESTART,
        ops::DELETE,
        ops::PROJECT_BY_ID,
    ] {
        refused(&db, &hub, query, json!({ "id": "abc" }), "INVALID_INPUT").await;
    }
    let event = "query($id: ID!) { event(id: $id) { id } }";
    refused(&db, &hub, event, json!({ "id": "abc" }), "INVALID_INPUT").await;
    let id = hub.create_project("Versioned", "/srv/v").await;
    refused(
        &db,
        &hub,
        ops::START,
        json!({ "id": id, "v": -1 }),
        "INVALID_INPUT",
    )
    .await;
}

#[tokio::test]
async fn page_sizes_outside_0_to_1000_are_invalid_input() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let projects = "query($first: Int) { projects(first: $first) { edges { cursor } } }";
    let events = "query($first: Int) { events(first: $first) { edges { cursor } } }";
    for query in [projects, events] {
        for first in [1001, -1] {
            refused(&db, &hub, query, json!({ "first": first }), "INVALID_INPUT").await;
        }
    }
    let id = hub.create_project("Paged", "/srv/p").await;
    let history = "query($id: ID!) { project(id: $id) { history(first: 1001) { id } } }";
    refused(&db, &hub, history, json!({ "id": id }), "INVALID_INPUT").await;
    let fine = hub.graphql(projects, json!({ "first": 1000 })).await;
    assert!(fine["errors"].is_null(), "{fine}");
}

#[tokio::test]
async fn cursors_not_handed_out_by_the_hub_are_invalid_input() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    hub.create_project("Cursed", "/srv/c").await;
    let projects = "query($after: String) { projects(after: $after) { edges { cursor } } }";
    let events = "query($after: String) { events(after: $after) { edges { cursor } } }";
    let page = hub.graphql(projects, json!({})).await;
    let project_cursor = data(&page, "projects")["edges"][0]["cursor"].clone();
    assert!(project_cursor.is_string(), "{page}");

    for after in [json!("not a cursor!"), json!(""), json!("cDp4Onk")] {
        refused(
            &db,
            &hub,
            projects,
            json!({ "after": after }),
            "INVALID_INPUT",
        )
        .await;
        refused(
            &db,
            &hub,
            events,
            json!({ "after": after }),
            "INVALID_INPUT",
        )
        .await;
    }
    let swapped = json!({ "after": project_cursor });
    refused(&db, &hub, events, swapped, "INVALID_INPUT").await;
}

#[tokio::test]
async fn malformed_subject_patterns_are_invalid_input() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    for subject in [
        "a..b",
        "",
        ".hub",
        "hub.>.project",
        "hub.pro*",
        "hub project",
    ] {
        let filter = json!({ "filter": { "subject": subject } });
        refused(&db, &hub, ops::EVENTS, filter, "INVALID_INPUT").await;
    }
}

#[tokio::test]
async fn project_needs_exactly_one_of_id_and_slug() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Either", "/srv/e").await;
    let query = "query($id: ID, $slug: String) { project(id: $id, slug: $slug) { id } }";
    let both = json!({ "id": id, "slug": "either" });
    refused(&db, &hub, query, both, "INVALID_INPUT").await;
    refused(&db, &hub, query, json!({}), "INVALID_INPUT").await;
}

#[tokio::test]
async fn a_name_whose_slug_is_held_by_another_project_is_name_taken() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    hub.create_project("My App", "/srv/a").await;
    let other = hub.create_project("Other", "/srv/o").await;
    for name in ["My App", "my-app", "MY  app!"] {
        let variables = json!({ "name": name, "path": "/srv/b" });
        let answer = refused(&db, &hub, ops::CREATE, variables, "NAME_TAKEN").await;
        let message = first_error(&answer.body).message;
        assert!(message.contains("my-app"), "names the slug: {message}");
    }
    let rename = json!({ "id": other, "name": "My-App" });
    refused(&db, &hub, ops::RENAME, rename, "NAME_TAKEN").await;
    assert_eq!(hub.stats().await["total"], 2);
    assert_eq!(hub.project(&other).await["slug"], "other");
}

#[tokio::test]
async fn transitions_the_state_does_not_allow_are_invalid_transition() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Stateful", "/srv/s").await;
    refused(
        &db,
        &hub,
        ops::STOP,
        json!({ "id": id }),
        "INVALID_TRANSITION",
    )
    .await;
    refused(
        &db,
        &hub,
        ops::RESTART,
        json!({ "id": id }),
        "INVALID_TRANSITION",
    )
    .await;
    hub.start_and_wait(&id).await;
    let answer = refused(
        &db,
        &hub,
        ops::START,
        json!({ "id": id }),
        "INVALID_TRANSITION",
    )
    .await;
    assert_eq!(
        first_error(&answer.body).message,
        "the project is already running, so it cannot be started again"
    );
    refused(
        &db,
        &hub,
        ops::DELETE,
        json!({ "id": id }),
        "INVALID_TRANSITION",
    )
    .await;
    let project: Project = view(&hub.project(&id).await);
    assert_eq!(
        (project.status, project.version),
        (ProjectStatus::Running, 3)
    );
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Versioned", "/srv/v").await;
    payload(&hub.start_project(&id, Some(1)).await, "startProject");
    // The orchestrator's completion is version 3.
    hub.wait_for_status(&id, "RUNNING").await;
    let stale = json!({ "id": id, "v": 1 });
    let answer = refused(&db, &hub, ops::STOP, stale, "CONFLICT").await;
    let message = first_error(&answer.body).message;
    assert!(
        message.contains("version 3"),
        "says the current version: {message}"
    );
    refused(
        &db,
        &hub,
        ops::STOP,
        json!({ "id": id, "v": 5 }),
        "CONFLICT",
    )
    .await;
    let rename = json!({ "id": id, "name": "New", "v": 0 });
    refused(&db, &hub, ops::RENAME, rename, "CONFLICT").await;
    payload(&hub.stop_project(&id, Some(3)).await, "stopProject");
    hub.wait_for_status(&id, "STOPPED").await;
}

#[tokio::test]
async fn mutations_need_the_api_token_when_one_is_configured() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some(secrecy::SecretString::from("t0ken"));
    // Reads open, so that the refusals below are the mutations' own.
    config.access.public_reads = true;
    let hub = TestHub::start_with(config).await;
    let create = json!({ "name": "Guarded", "path": "/srv/g" });

    for headers in [
        &[][..],
        &[("Authorization", "Bearer wrong")][..],
        &[("Authorization", "t0ken")][..],
        &[("Authorization", "Basic t0ken")][..],
    ] {
        let answer = hub
            .graphql_response(ops::CREATE, create.clone(), headers)
            .await;
        assert_eq!(
            answer.code(),
            Some("UNAUTHENTICATED"),
            "{headers:?}: {}",
            answer.body
        );
        assert!(!answer.status.is_server_error());
    }
    assert_eq!(
        hub.stats().await["total"],
        0,
        "a refused create created nothing"
    );
    assert_eq!(db.event_count().await, 0);

    let auth = [("Authorization", "Bearer t0ken")];
    let answer = hub.graphql_response(ops::CREATE, create, &auth).await;
    let id = payload(&answer.body, "createProject")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = hub
        .graphql_response(ops::START, json!({ "id": id }), &[])
        .await;
    assert_eq!(start.code(), Some("UNAUTHENTICATED"));
    assert_eq!(
        hub.project(&id).await["status"],
        "STOPPED",
        "queries need no token"
    );
    let start = hub
        .graphql_response(ops::START, json!({ "id": id }), &auth)
        .await;
    let status = &payload(&start.body, "startProject")["status"];
    assert!(status == "STARTING" || status == "RUNNING", "{status}");
    hub.wait_for_status(&id, "RUNNING").await;
    let body = hub.graphql(ops::HISTORY, json!({ "id": id })).await;
    let history: Vec<Event> = view(&data(&body, "project")["history"]);
    assert_eq!(history[0].origin.user, "token", "{body}");
}

#[tokio::test]
async fn internal_errors_tell_the_client_nothing_about_the_database() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let pool = db.pool().await;
    sqlx::query("DROP VIEW project_stats")
        .execute(&pool)
        .await
        .unwrap();
    let answer = refused(&db, &hub, ops::STATS, json!({}), "INTERNAL").await;
    assert_opaque(&answer);

    // An event the domain cannot read: loading the project fails.
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Project', $1, 1, 'ProjectExploded', '1.0', '{\"ProjectExploded\": 1}', '{}')",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    let answer = refused(&db, &hub, ops::START, json!({ "id": id }), "INTERNAL").await;
    assert_opaque(&answer);
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_without_details() {
    let db = TestDb::create().await;
    let proxy = hub_tests::Proxy::start(hub_tests::db::server_address(db.url()).await).await;
    let mut config = TestHub::config(&db.url_via(proxy.addr()));
    config.database.db_acquire_timeout_ms = 1000;
    let hub = TestHub::start_with(config).await;
    let id = hub.create_project("Offline", "/srv/o").await;

    proxy.refuse();
    let query = hub
        .graphql_response(ops::PROJECT_BY_ID, json!({ "id": id }), &[])
        .await;
    let mutation = hub
        .graphql_response(ops::START, json!({ "id": id }), &[])
        .await;
    let create = json!({ "name": "New", "path": "/srv/n" });
    let lookup = hub.graphql_response(ops::CREATE, create, &[]).await;
    for answer in [&query, &mutation, &lookup] {
        assert_eq!(answer.code(), Some("UNAVAILABLE"), "{}", answer.body);
        assert!(!answer.status.is_server_error(), "status {}", answer.status);
        assert_opaque(answer);
    }
    proxy.restore();
}
