//! The database goes away under a running hub and comes back: requests fail
//! fast with UNAVAILABLE (never hang, never 5xx on /graphql), /health says
//! so, and everything works again afterwards without a restart.

use std::time::{Duration, Instant};

use hub_tests::graphql::{data_as, view, views};
use hub_tests::hub::error_code;
use hub_tests::ops::{self, payload, Response};
use hub_tests::views::{ConsumerHealth, Event, Health, HealthStatus, Project};
use hub_tests::{wait_until, Proxy, TestDb, TestHub};
use serde_json::{json, Value};

/// Longest a request may take while the database is gone: a bound on
/// hanging, not a speed test.
const NO_HANG: Duration = Duration::from_secs(5);

/// Long enough for the pool and the feed runners to reconnect.
const RECOVERY: Duration = Duration::from_secs(30);

/// A hub whose database connections all pass through a proxy.
async fn hub_behind_proxy(db: &TestDb) -> (Proxy, TestHub) {
    let proxy = Proxy::start(hub_tests::db::server_address(db.url()).await).await;
    let mut config = TestHub::config(&db.url_via(proxy.addr()));
    config.database.db_acquire_timeout_ms = 1500;
    let hub = TestHub::start_with(config).await;
    (proxy, hub)
}

/// Sends an operation and measures how long the answer took.
async fn timed(hub: &TestHub, query: &str, variables: Value) -> (Response, Duration) {
    let started = Instant::now();
    let answer = hub.graphql_response(query, variables, &[]).await;
    (answer, started.elapsed())
}

async fn health(hub: &TestHub) -> (reqwest::StatusCode, Health) {
    let response = hub
        .http()
        .get(format!("{}/health", hub.url()))
        .send()
        .await
        .expect("GET /health");
    let status = response.status();
    let report: Value = response.json().await.expect("health is JSON");
    (status, view(&report))
}

/// Checks that a query and mutations fail fast with UNAVAILABLE and that
/// /health answers 503, while the database is away.
async fn assert_unavailable(hub: &TestHub, id: &str) {
    let (query, took) = timed(hub, ops::PROJECT_BY_ID, json!({ "id": id })).await;
    assert_eq!(query.code(), Some("UNAVAILABLE"), "query: {}", query.body);
    assert!(took < NO_HANG, "the query hung for {took:?}");
    assert!(
        !query.status.is_server_error(),
        "query status {}",
        query.status
    );

    let (mutation, took) = timed(hub, ops::START, json!({ "id": id })).await;
    assert_eq!(
        mutation.code(),
        Some("UNAVAILABLE"),
        "mutation: {}",
        mutation.body
    );
    assert!(took < NO_HANG, "the mutation hung for {took:?}");
    assert!(
        !mutation.status.is_server_error(),
        "mutation status {}",
        mutation.status
    );

    // A create loads nothing: its first round trip is the lookup of the
    // slug's holder and free ports, before the decision.
    let variables = json!({ "name": "Never Created", "path": "/srv/n" });
    let (create, took) = timed(hub, ops::CREATE, variables).await;
    assert_eq!(
        create.code(),
        Some("UNAVAILABLE"),
        "create: {}",
        create.body
    );
    assert!(took < NO_HANG, "the create hung for {took:?}");

    let started = Instant::now();
    let (status, body) = health(hub).await;
    assert!(started.elapsed() < NO_HANG, "/health hung");
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    assert!(!body.database.connected, "{body:?}");
    assert_eq!(body.status, HealthStatus::Unhealthy, "{body:?}");
}

/// Waits for queries and the `projects` feed to work again, then checks
/// that a mutation answers with its own write and the event log follows.
async fn assert_recovers(hub: &TestHub, id: &str) {
    let project = wait_until("queries to answer again", RECOVERY, || async {
        let answer = hub
            .graphql_response(ops::PROJECT_BY_ID, json!({ "id": id }), &[])
            .await;
        answer.body["errors"]
            .is_null()
            .then(|| data_as::<Project>(&answer.body, "project"))
    })
    .await;
    assert_eq!(project.version, 1, "the failed mutation recorded nothing");

    wait_until("the projects feed to run again", RECOVERY, || async {
        let (_, body) = health(hub).await;
        body.consumer("projects").active_here.then_some(())
    })
    .await;
    let started: Project = view(&hub.start_and_wait(id).await);
    assert_eq!(started.version, 3);

    let events: Vec<Event> = views(&hub.events_eventually(json!({ "aggregateId": id }), 3).await);
    assert_eq!(events[1].event_type, "ProjectStartRequested");
    assert_eq!(events[2].event_type, "ProjectStarted");
    let (status, body) = health(hub).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body:?}");
    assert!(body.database.connected, "{body:?}");
}

#[tokio::test]
async fn a_refused_database_makes_requests_unavailable_until_it_returns() {
    let db = TestDb::create().await;
    let (proxy, hub) = hub_behind_proxy(&db).await;
    let id = hub.create_project("Outage", "/srv/o").await;

    proxy.refuse();
    assert_unavailable(&hub, &id).await;
    proxy.restore();
    assert_recovers(&hub, &id).await;
}

#[tokio::test]
async fn a_database_that_drops_connections_makes_requests_unavailable_until_it_returns() {
    let db = TestDb::create().await;
    let (proxy, hub) = hub_behind_proxy(&db).await;
    let id = hub.create_project("Dropped", "/srv/d").await;

    proxy.cut();
    assert_unavailable(&hub, &id).await;
    proxy.restore();
    assert_recovers(&hub, &id).await;
}

#[tokio::test]
async fn a_database_that_drops_connections_never_causes_a_5xx_on_graphql_and_is_survived() {
    let db = TestDb::create().await;
    let (proxy, hub) = hub_behind_proxy(&db).await;
    let id = hub.create_project("Dropped", "/srv/d").await;

    proxy.cut();
    for (query, variables) in [
        (ops::PROJECT_BY_ID, json!({ "id": id })),
        (ops::START, json!({ "id": id })),
        (ops::STATS, json!({})),
    ] {
        let (answer, took) = timed(&hub, query, variables).await;
        assert!(answer.code().is_some(), "an error: {}", answer.body);
        assert!(!answer.status.is_server_error(), "status {}", answer.status);
        assert!(took < NO_HANG, "hung for {took:?}");
    }
    let (status, body) = health(&hub).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body:?}");
    assert!(!body.database.connected, "{body:?}");

    proxy.restore();
    assert_recovers(&hub, &id).await;
}

#[tokio::test]
async fn health_answers_200_while_the_database_is_up() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let (status, body) = health(&hub).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body:?}");
    assert!(body.database.connected, "{body:?}");
    wait_until("the projects feed to start", RECOVERY, || async {
        let (_, body) = health(&hub).await;
        body.consumer("projects").active_here.then_some(())
    })
    .await;
}

/// The `projects` consumer's entry in /health.
async fn projects_feed(hub: &TestHub) -> ConsumerHealth {
    health(hub).await.1.consumer("projects").clone()
}

#[tokio::test]
async fn the_feed_recovers_promptly_from_a_short_outage_after_a_long_one() {
    let db = TestDb::create().await;
    let (proxy, hub) = hub_behind_proxy(&db).await;
    let id = hub.create_project("Twice", "/srv/t").await;

    // A long outage: the runner fails seven times (its reconnect attempts
    // back off up to 1 s apart).
    proxy.refuse();
    wait_until("seven reconnect failures", RECOVERY, || async {
        let feed = projects_feed(&hub).await;
        (feed.consecutive_failures >= 7).then_some(())
    })
    .await;
    proxy.restore();
    assert_recovers(&hub, &id).await;

    // A short one: the runner notices, then the database is back at once.
    proxy.refuse();
    wait_until("the runner to notice the outage", RECOVERY, || async {
        (!projects_feed(&hub).await.active_here).then_some(())
    })
    .await;
    proxy.restore();
    wait_until("queries to answer again", RECOVERY, || async {
        let answer = hub
            .graphql_response(ops::PROJECT_BY_ID, json!({ "id": id }), &[])
            .await;
        answer.body["errors"].is_null().then_some(())
    })
    .await;
    // Writes have a pool of their own: a connection of it that the outage
    // broke fails its next use once with UNAVAILABLE ("try again"), as a
    // client is told to.
    let stopped = wait_until("writes to answer again", RECOVERY, || async {
        let answer = hub.stop_project(&id, None).await;
        (error_code(&answer) != Some("UNAVAILABLE")).then_some(answer)
    })
    .await;
    let version = view::<Project>(payload(&stopped, "stopProject")).version;
    assert!(version == 4 || version == 5, "{stopped}");
    assert_eq!(hub.wait_for_status(&id, "STOPPED").await["version"], 5);
}

#[tokio::test]
async fn health_is_healthy_again_once_the_feed_has_reconnected() {
    let db = TestDb::create().await;
    let (proxy, hub) = hub_behind_proxy(&db).await;
    hub.create_project("Idle", "/srv/i").await;
    wait_until("a healthy start", RECOVERY, || async {
        (health(&hub).await.1.status == HealthStatus::Healthy).then_some(())
    })
    .await;

    proxy.refuse();
    wait_until("the runner to notice the outage", RECOVERY, || async {
        (!projects_feed(&hub).await.active_here).then_some(())
    })
    .await;
    proxy.restore();
    wait_until("every consumer to run again", RECOVERY, || async {
        let (_, body) = health(&hub).await;
        body.consumers
            .values()
            .all(|c| c.active_here && c.lag == Some(0))
            .then_some(())
    })
    .await;
    wait_until(
        "/health to say healthy",
        Duration::from_secs(10),
        || async { (health(&hub).await.1.status == HealthStatus::Healthy).then_some(()) },
    )
    .await;
}
