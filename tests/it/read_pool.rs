//! Clients' reads have a pool of their own, whose statements PostgreSQL
//! stops after `HUB_DB_READ_TIMEOUT_MS`: a read that waits on a lock (here:
//! another session holding the event log) ends with `QUERY_TIMEOUT` on the
//! server too, and reads that wait never take the connections that writes
//! need.

use std::time::Duration;

use hub_tests::db::lock_table;
use hub_tests::hub::error_code;
use hub_tests::spawned::SpawnedHub;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The sessions of the hub's pool of reads (`hub-reads`) waiting on a
/// lock in its database.
async fn reads_waiting_on_a_lock(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'hub-reads' \
           AND wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .expect("read pg_stat_activity")
}

#[tokio::test]
async fn a_read_past_its_statement_timeout_is_stopped_in_the_database_with_its_own_code() {
    // The GraphQL deadline is far off: only PostgreSQL can stop the reads.
    let mut hub = SpawnedHub::start(
        "read-timeout",
        &[
            ("HUB_DB_READ_TIMEOUT_MS", "300"),
            ("HUB_GRAPHQL_TIMEOUT_MS", "120000"),
        ],
    )
    .await;
    hub.create_project("logged").await;
    // Another session holds the event log: no page of it can be read.
    let pool = hub.db.pool().await;
    let blocker = lock_table(&pool, "event_log").await;
    let rest = hub
        .http()
        .get(format!("{}/api/events?subject=hub.>", hub.url()))
        .send()
        .await
        .expect("GET /api/events");
    assert_eq!(rest.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = rest.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "QUERY_TIMEOUT", "{body}");
    let answer = hub
        .graphql("{ events(first: 10) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(
        error_code(&answer.body),
        Some("QUERY_TIMEOUT"),
        "{}",
        answer.body
    );
    assert_eq!(
        reads_waiting_on_a_lock(&pool).await,
        0,
        "the stopped reads left nothing waiting in the database"
    );
    blocker.rollback().await.expect("release the lock");
    let answer = hub
        .graphql("{ events(first: 10) { nodes { id } } }", json!({}))
        .await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
    hub.assert_alive().await;
}

#[tokio::test]
async fn reads_that_wait_do_not_hold_up_writes() {
    // Fewer connections for writes than there are reads waiting: on one
    // shared pool, the reads would hold all of them.
    let mut hub = SpawnedHub::start(
        "read-pool",
        &[
            ("HUB_DB_MAX_CONNECTIONS", "8"),
            ("HUB_DB_READ_CONNECTIONS", "2"),
            ("HUB_DB_READ_TIMEOUT_MS", "0"),
            ("HUB_DB_ACQUIRE_TIMEOUT_MS", "30000"),
            ("HUB_GRAPHQL_TIMEOUT_MS", "120000"),
        ],
    )
    .await;
    let pool = hub.db.pool().await;
    let blocker = lock_table(&pool, "event_log").await;
    let readers = reqwest::Client::new();
    let reads: Vec<_> = (0..16)
        .map(|_| {
            let request = readers
                .get(format!("{}/api/events", hub.url()))
                .timeout(Duration::from_secs(60));
            tokio::spawn(async move { request.send().await.map(|answer| answer.status()) })
        })
        .collect();
    hub_tests::wait_until(
        "both read connections wait on the lock",
        Duration::from_secs(10),
        || {
            let pool = pool.clone();
            async move { (reads_waiting_on_a_lock(&pool).await == 2).then_some(()) }
        },
    )
    .await;
    // The write commits and its answer shows it, while every connection
    // for reads is taken.
    let created = hub
        .graphql(
            "mutation($input: CreateProjectInput!) { createProject(input: $input) { project { id name } stale } }",
            json!({ "input": { "name": "written", "path": "/srv/written" } }),
        )
        .await;
    let answer = &created.body["data"]["createProject"];
    assert_eq!(answer["project"]["name"], "written", "{}", created.body);
    assert_eq!(answer["stale"], false, "{}", created.body);
    assert!(
        reads.iter().all(|read| !read.is_finished()),
        "the reads still wait"
    );
    blocker.rollback().await.expect("release the lock");
    for read in reads {
        let status = read.await.expect("the read's task").expect("an answer");
        assert_eq!(status, StatusCode::OK);
    }
    let id = answer["project"]["id"].as_str().expect("an id");
    let read = hub
        .graphql(
            "query($id: ID!) { project(id: $id) { name } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        read.body["data"]["project"]["name"], "written",
        "{}",
        read.body
    );
    hub.assert_alive().await;
}
