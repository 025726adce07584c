//! The admin GraphQL operations on the read models: `projections` (state,
//! lag, last rebuild) and `rebuildProjections` (a zero-downtime rebuild in
//! the background), guarded by the API token.

use std::time::Duration;

use hub_tests::feed::migrated_pool;
use hub_tests::graphql::{data, data_as};
use hub_tests::rebuild::{bus, caught_up, generate_history, models, table_exists};
use hub_tests::views::{Projection, ProjectionState, RebuildState, RetryResult};
use hub_tests::{wait_until, TestDb, TestHub};
use infrastructure::orchestration::ProcessManager;
use serde_json::{json, Value};

const TOKEN: &str = "admin-t0ken";
const AUTH: [(&str, &str); 1] = [("Authorization", "Bearer admin-t0ken")];

// `PROJECTIONS` and `REBUILD` select every field of `views::Projection`.
const PROJECTIONS: &str = "{ projections { name handled lagEvents lagSeconds state \
     rebuildDone rebuildTotal version codeVersion outdated parked \
     lastRebuild { state done total eventsPerSecond error } } }";
const REBUILD: &str = "mutation($names: [String!]) { rebuildProjections(names: $names) { \
     name handled lagEvents lagSeconds state rebuildDone rebuildTotal version codeVersion \
     outdated parked lastRebuild { state done total eventsPerSecond error } } }";
const RETRY: &str = "mutation($name: String!) { retryParkedEvents(name: $name) { name \
     replayed { ...E } stillParked { ...E } } } \
     fragment E on ParkedEvent { eventId aggregateId sequence eventType failed error \
     heldBehind attempts }";
const PROJECT_NAMES: &str = "{ projects(first: 1000) { edges { node { id name status } } } }";

/// Waits until the hub's process manager has finished every start and stop
/// the history asked for (completing them appends events), then until the
/// read models have handled everything.
async fn settled(pool: &sqlx::PgPool) {
    wait_until(
        "the orchestrator to finish its requests",
        Duration::from_secs(30),
        || async {
            let lag = infrastructure::feed::consumer_lag(pool, ProcessManager::NAME)
                .await
                .ok()?;
            let unfinished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM orchestration_requests WHERE finished_at IS NULL",
            )
            .fetch_one(pool)
            .await
            .ok()?;
            (lag == 0 && unfinished == 0).then_some(())
        },
    )
    .await;
    caught_up(pool).await;
}

/// A hub whose admin operations and mutations need the token; its reads
/// are public, so that the plain read helpers work.
async fn hub_with_token(db: &TestDb) -> TestHub {
    let mut config = TestHub::config(db.url());
    config.api_token = Some(secrecy::SecretString::from(TOKEN));
    config.access.public_reads = true;
    TestHub::start_with(config).await
}

async fn admin(hub: &TestHub, query: &str, variables: Value) -> Value {
    hub.graphql_request(query, variables, &AUTH).await.1
}

/// The `projections` list.
async fn projections(hub: &TestHub) -> Vec<Projection> {
    data_as(&admin(hub, PROJECTIONS, json!({})).await, "projections")
}

fn named<'a>(list: &'a [Projection], name: &str) -> &'a Projection {
    list.iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no read model {name} in {list:?}"))
}

#[tokio::test]
async fn admin_operations_are_refused_without_the_token_and_change_nothing() {
    let db = TestDb::create().await;
    let hub = hub_with_token(&db).await;
    for (query, variables) in [
        (PROJECTIONS, json!({})),
        (REBUILD, json!({ "names": ["projects"] })),
        (REBUILD, json!({})),
        (RETRY, json!({ "name": "projects" })),
    ] {
        for headers in [&[][..], &[("Authorization", "Bearer wrong")][..]] {
            let (_, body) = hub.graphql_request(query, variables.clone(), headers).await;
            assert_eq!(
                hub_tests::hub::error_code(&body),
                Some("UNAUTHENTICATED"),
                "{query} with {headers:?}: {body}"
            );
            assert!(
                body["data"].is_null()
                    || body["data"]
                        .as_object()
                        .is_some_and(|d| d.values().all(Value::is_null))
            );
        }
    }
    let pool = db.pool().await;
    for name in ["projects", "event_log"] {
        assert!(named(&projections(&hub).await, name).last_rebuild.is_none());
        assert!(
            !table_exists(&pool, &format!("{name}__rebuild")).await,
            "no rebuild of {name} started"
        );
    }
}

#[tokio::test]
async fn a_rebuild_asked_over_graphql_runs_beside_the_live_models_and_switches_over() {
    let db = TestDb::create().await;
    // The history is written before the hub runs: its process manager
    // would otherwise complete the starts the history completes itself.
    let pool = migrated_pool(&db).await;
    let ids = generate_history(&bus(&pool), 40).await;
    let hub = hub_with_token(&db).await;
    settled(&pool).await;
    let before = models(&pool).await;
    let listed = projections(&hub).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    for name in ["projects", "event_log"] {
        let projection = named(&listed, name);
        assert_eq!(projection.handled, total, "{projection:?}");
        assert_eq!(projection.lag_events, 0);
        assert_eq!(projection.state, ProjectionState::Live);
    }

    // Every read model, in the background: the answer comes at once.
    let body = admin(&hub, REBUILD, json!({ "names": null })).await;
    let started: Vec<Projection> = data_as(&body, "rebuildProjections");
    assert_eq!(started.len(), 2);
    assert!(started.iter().all(|p| p.last_rebuild.is_some()), "{body}");

    // Queries are answered all along; the rebuilds end switched over.
    let finished = wait_until(
        "both rebuilds to switch over",
        Duration::from_secs(60),
        || async {
            let page = hub.graphql(PROJECT_NAMES, json!({})).await;
            assert!(
                page["errors"].is_null(),
                "a query failed during the rebuild: {page}"
            );
            let served = data(&page, "projects")["edges"]
                .as_array()
                .map_or(0, Vec::len);
            // Deleted projects (every tenth) are left out of the list.
            assert_eq!(served, ids.len() - ids.len().div_ceil(10));
            let list = projections(&hub).await;
            for projection in &list {
                assert_ne!(
                    projection.rebuild_state(),
                    Some(RebuildState::Failed),
                    "{projection:?}"
                );
            }
            list.iter()
                .all(|p| p.rebuild_state() == Some(RebuildState::Switched))
                .then_some(list)
        },
    )
    .await;
    for name in ["projects", "event_log"] {
        let projection = named(&finished, name);
        assert_eq!(projection.state, ProjectionState::Live);
        let done = projection.last_rebuild.as_ref().and_then(|r| r.done);
        assert_eq!(done, Some(total), "{projection:?}");
        assert!(!table_exists(&pool, &format!("{name}__rebuild")).await);
    }
    caught_up(&pool).await;
    assert_eq!(
        models(&pool).await,
        before,
        "the rebuilt read models equal the live ones"
    );
}

#[tokio::test]
async fn a_bad_rebuild_request_is_a_typed_error_and_starts_nothing() {
    let db = TestDb::create().await;
    let hub = hub_with_token(&db).await;
    for (names, code) in [
        (json!(["nope"]), "NOT_FOUND"),
        (json!(["projects", "nope"]), "NOT_FOUND"),
        (json!([]), "INVALID_INPUT"),
        (json!(["proj\u{0}ects"]), "INVALID_INPUT"),
        (json!(["x".repeat(100_000)]), "INVALID_INPUT"),
    ] {
        let body = admin(&hub, REBUILD, json!({ "names": names })).await;
        assert_eq!(hub_tests::hub::error_code(&body), Some(code), "{body}");
    }
    let pool = db.pool().await;
    for projection in projections(&hub).await {
        assert!(projection.last_rebuild.is_none(), "{projection:?}");
    }
    assert!(!table_exists(&pool, "projects__rebuild").await);
}

#[tokio::test]
async fn a_hub_configured_to_rebuild_an_outdated_read_model_at_start() {
    let db = TestDb::create().await;
    // The history is written before the hub runs (see above).
    let pool = migrated_pool(&db).await;
    generate_history(&bus(&pool), 15).await;
    let first = hub_with_token(&db).await;
    settled(&pool).await;
    let before = models(&pool).await;
    // As if an older build (projection version 0) had built `projects`.
    sqlx::query(
        "INSERT INTO read_model_versions (read_model, version) VALUES ('projects', 0) \
         ON CONFLICT (read_model) DO UPDATE SET version = 0",
    )
    .execute(&pool)
    .await
    .unwrap();
    let listed = projections(&first).await;
    let projects = named(&listed, "projects");
    assert!(projects.outdated, "{projects:?}");
    assert_eq!(projects.version, 0);
    assert!(
        projects.last_rebuild.is_none(),
        "not configured: no rebuild"
    );
    assert!(!named(&listed, "event_log").outdated);

    let mut config = TestHub::config(db.url());
    config.hub_id = first.hub_id().to_owned();
    config.api_token = Some(secrecy::SecretString::from(TOKEN));
    config.access.public_reads = true;
    config.rebuild_outdated = true;
    let mut second = TestHub::start_with(config).await;
    second.keep_stream();
    let rebuilt = wait_until(
        "the outdated read model to be rebuilt",
        Duration::from_secs(60),
        || async {
            let list = projections(&second).await;
            let projects = named(&list, "projects");
            assert_ne!(
                projects.rebuild_state(),
                Some(RebuildState::Failed),
                "{projects:?}"
            );
            (projects.rebuild_state() == Some(RebuildState::Switched)).then(|| list.clone())
        },
    )
    .await;
    let projects = named(&rebuilt, "projects");
    assert!(!projects.outdated, "{projects:?}");
    assert_eq!(projects.version, projects.code_version);
    assert!(
        named(&rebuilt, "event_log").last_rebuild.is_none(),
        "only the outdated one"
    );
    caught_up(&pool).await;
    assert_eq!(models(&pool).await, before);
}

#[tokio::test]
async fn parked_events_are_counted_and_retried_over_graphql() {
    let db = TestDb::create().await;
    let hub = hub_with_token(&db).await;
    let pool = db.pool().await;
    // The "bug": the projection cannot write this project's row.
    sqlx::query("ALTER TABLE projects ADD CONSTRAINT projects_admin_bug CHECK (name <> 'Poison')")
        .execute(&pool)
        .await
        .unwrap();
    let bus = bus(&pool);
    let (poison, created) = hub_tests::feed::create_project(&bus, "Poison").await;
    created.expect("the store takes the event");
    let (_, fine) = hub_tests::feed::create_project(&bus, "Fine").await;
    fine.expect("the store takes the event");
    let parked = wait_until(
        "the poison event to be parked",
        Duration::from_secs(30),
        || async {
            let list = projections(&hub).await;
            let projects = named(&list, "projects");
            (projects.parked == 1 && projects.lag_events == 0).then(|| projects.clone())
        },
    )
    .await;
    assert_eq!(parked.state, ProjectionState::Live, "{parked:?}");
    assert_eq!(named(&projections(&hub).await, "event_log").parked, 0);

    // Still broken: the retry leaves it parked.
    let body = admin(&hub, RETRY, json!({ "name": "projects" })).await;
    let retried: RetryResult = data_as(&body, "retryParkedEvents");
    assert!(retried.replayed.is_empty(), "{body}");
    assert!(
        retried.still_parked.first().is_some_and(|e| e.failed),
        "{body}"
    );

    // "The fix", then the retry replays it.
    sqlx::query("ALTER TABLE projects DROP CONSTRAINT projects_admin_bug")
        .execute(&pool)
        .await
        .unwrap();
    let body = admin(&hub, RETRY, json!({ "name": "projects" })).await;
    let retried: RetryResult = data_as(&body, "retryParkedEvents");
    assert_eq!(retried.name, "projects");
    assert!(retried.still_parked.is_empty(), "{body}");
    let [replayed] = retried.replayed.as_slice() else {
        panic!("one event replayed: {body}");
    };
    assert_eq!(replayed.aggregate_id, poison.to_string());
    assert_eq!(replayed.event_type, "ProjectCreated");
    assert_eq!(replayed.sequence, 1);
    assert_eq!(named(&projections(&hub).await, "projects").parked, 0);
    let project = hub.project(&poison.to_string()).await;
    assert_eq!(project["name"], "Poison");

    for (name, code) in [("nope", "NOT_FOUND"), ("a\u{0}b", "INVALID_INPUT")] {
        let body = admin(&hub, RETRY, json!({ "name": name })).await;
        assert_eq!(hub_tests::hub::error_code(&body), Some(code), "{body}");
    }
}
