//! Histories recorded before orchestration: `ProjectStarted` and
//! `ProjectStopped` written directly, without a request before them, still
//! load, project and accept new commands.

use hub_tests::feed::migrated_pool;
use hub_tests::graphql::first_error;
use hub_tests::ops::payload;
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// Writes `events` (type, payload) for project `id` as the hub before
/// orchestration did: one transaction per event, sequences from 1.
async fn write_old_history(pool: &PgPool, id: Uuid, events: &[(&str, Value)]) {
    let metadata = json!({
        "correlation_id": "old-corr", "causation_id": "old-cause",
        "hub_id": "old-hub", "service": "hub-api", "user": "old-user"
    });
    for (i, (event_type, payload)) in events.iter().enumerate() {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('Project', $1, $2, $3, '1.0', $4, $5)",
        )
        .bind(id.to_string())
        .bind(i as i64 + 1)
        .bind(event_type)
        .bind(payload)
        .bind(&metadata)
        .execute(pool)
        .await
        .expect("write an old event");
    }
}

fn created(id: Uuid, name: &str, slug: &str, first_port: u16) -> (&'static str, Value) {
    (
        "ProjectCreated",
        json!({"ProjectCreated": {
            "project_id": id, "name": name, "slug": slug, "path": format!("/srv/{slug}"),
            "ports": {"backend": first_port, "frontend": first_port + 1,
                      "postgres": first_port + 2, "redis": first_port + 3},
        }}),
    )
}

fn started() -> (&'static str, Value) {
    ("ProjectStarted", json!({"ProjectStarted": {}}))
}

fn stopped() -> (&'static str, Value) {
    ("ProjectStopped", json!({"ProjectStopped": {}}))
}

#[tokio::test]
async fn an_old_history_of_direct_starts_and_stops_projects_and_accepts_new_commands() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let running = Uuid::new_v4();
    let stopped_one = Uuid::new_v4();
    write_old_history(
        &pool,
        running,
        &[
            created(running, "Old Runner", "old-runner", 20000),
            started(),
            stopped(),
            started(),
        ],
    )
    .await;
    write_old_history(
        &pool,
        stopped_one,
        &[
            created(stopped_one, "Old Stopped", "old-stopped", 20004),
            started(),
            stopped(),
        ],
    )
    .await;

    let hub = TestHub::start(db.url()).await;
    let runner = hub.wait_for_status(&running.to_string(), "RUNNING").await;
    assert_eq!(runner["version"], 4);
    assert!(runner["lastStartedAt"].is_string() && runner["lastStoppedAt"].is_string());
    assert!(runner["lastError"].is_null());
    let idle = hub
        .wait_for_status(&stopped_one.to_string(), "STOPPED")
        .await;
    assert_eq!(idle["version"], 3);

    // The aggregate loads: new lifecycle commands go through requests.
    let id = running.to_string();
    let body = hub.start_project(&id, None).await;
    assert_eq!(
        first_error(&body).message,
        "the project is already running, so it cannot be started again",
        "{body}"
    );
    let stopped = hub.stop_and_wait(&id).await;
    assert_eq!(stopped["version"], 6);
    let restarted = hub.start_and_wait(&id).await;
    assert_eq!(restarted["version"], 8);

    let other = stopped_one.to_string();
    hub.start_and_wait(&other).await;
    hub.stop_and_wait(&other).await;
    let deleted = payload(&hub.delete_project(&other).await, "deleteProject").clone();
    assert_eq!(deleted["version"], 8);

    // Only the new requests reached the process manager.
    let mut expected = vec![
        (running, 5, "COMPLETED".to_owned()),
        (running, 7, "COMPLETED".to_owned()),
        (stopped_one, 4, "COMPLETED".to_owned()),
        (stopped_one, 6, "COMPLETED".to_owned()),
    ];
    expected.sort();
    let outcomes = hub_tests::wait_until(
        "every request to be marked finished",
        std::time::Duration::from_secs(10),
        || async {
            let rows: Vec<(Uuid, i64, Option<String>)> = sqlx::query_as(
                "SELECT project_id, request_sequence, outcome FROM orchestration_requests \
                 ORDER BY project_id, request_sequence",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            rows.iter().all(|r| r.2.is_some()).then_some(rows)
        },
    )
    .await;
    let outcomes: Vec<(Uuid, i64, String)> = outcomes
        .into_iter()
        .map(|(p, s, o)| (p, s, o.unwrap_or_default()))
        .collect();
    assert_eq!(outcomes, expected);
}
