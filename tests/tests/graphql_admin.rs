//! The admin GraphQL operations on the read models: `projections` (state,
//! lag, last rebuild) and `rebuildProjections` (a zero-downtime rebuild in
//! the background), guarded by the API token.

use std::time::Duration;

use hub_tests::rebuild::{bus, caught_up, generate_history, models, table_exists};
use hub_tests::{wait_until, TestDb, TestHub};
use serde_json::{json, Value};

const TOKEN: &str = "admin-t0ken";
const AUTH: [(&str, &str); 1] = [("Authorization", "Bearer admin-t0ken")];

const PROJECTIONS: &str = "{ projections { name handled lagEvents lagSeconds state \
     rebuildDone rebuildTotal lastRebuild { state done total eventsPerSecond error } } }";
const REBUILD: &str = "mutation($names: [String!]) { rebuildProjections(names: $names) { \
     name state lastRebuild { state } } }";
const PROJECT_NAMES: &str = "{ projects(first: 1000) { edges { node { id name status } } } }";

async fn hub_with_token(db: &TestDb) -> TestHub {
    let mut config = TestHub::config(db.url());
    config.api_token = Some(secrecy::SecretString::from(TOKEN));
    TestHub::start_with(config).await
}

async fn admin(hub: &TestHub, query: &str, variables: Value) -> Value {
    hub.graphql_request(query, variables, &AUTH).await.1
}

/// The `projections` list, by name.
async fn projections(hub: &TestHub) -> Vec<Value> {
    let body = admin(hub, PROJECTIONS, json!({})).await;
    body["data"]["projections"]
        .as_array()
        .unwrap_or_else(|| panic!("projections failed: {body}"))
        .clone()
}

fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|p| p["name"] == name)
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
        assert!(named(&projections(&hub).await, name)["lastRebuild"].is_null());
        assert!(
            !table_exists(&pool, &format!("{name}__rebuild")).await,
            "no rebuild of {name} started"
        );
    }
}

#[tokio::test]
async fn a_rebuild_asked_over_graphql_runs_beside_the_live_models_and_switches_over() {
    let db = TestDb::create().await;
    let hub = hub_with_token(&db).await;
    let pool = db.pool().await;
    let ids = generate_history(&bus(&pool), 40).await;
    caught_up(&pool).await;
    let before = models(&pool).await;
    let listed = projections(&hub).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    for name in ["projects", "event_log"] {
        let projection = named(&listed, name);
        assert_eq!(projection["handled"], total, "{projection}");
        assert_eq!(projection["lagEvents"], 0);
        assert_eq!(projection["state"], "LIVE");
    }

    // Every read model, in the background: the answer comes at once.
    let body = admin(&hub, REBUILD, json!({ "names": null })).await;
    assert!(
        body["errors"].is_null(),
        "rebuildProjections failed: {body}"
    );
    let started = body["data"]["rebuildProjections"].as_array().unwrap();
    assert_eq!(started.len(), 2);
    assert!(
        started.iter().all(|p| !p["lastRebuild"].is_null()),
        "{body}"
    );

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
            let served = page["data"]["projects"]["edges"]
                .as_array()
                .map_or(0, Vec::len);
            // Deleted projects (every tenth) are left out of the list.
            assert_eq!(served, ids.len() - ids.len().div_ceil(10));
            let list = projections(&hub).await;
            for projection in &list {
                assert_ne!(projection["lastRebuild"]["state"], "FAILED", "{projection}");
            }
            list.iter()
                .all(|p| p["lastRebuild"]["state"] == "SWITCHED")
                .then_some(list)
        },
    )
    .await;
    for name in ["projects", "event_log"] {
        let projection = named(&finished, name);
        assert_eq!(projection["state"], "LIVE");
        assert_eq!(projection["lastRebuild"]["done"], total, "{projection}");
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
        assert!(projection["lastRebuild"].is_null(), "{projection}");
    }
    assert!(!table_exists(&pool, "projects__rebuild").await);
}
