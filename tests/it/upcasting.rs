//! An event stored in an older shape reaches every reader in today's shape:
//! the aggregate, the `projects` read model, the event log (GraphQL
//! `events`) and the JetStream stream. History itself is never rewritten.

use std::time::Duration;

use domain::ProjectId;
use hub_tests::feed::store_0_9_project_created;
use hub_tests::jetstream::{context, hub_events, read_stream};
use hub_tests::{wait_until, TestDb, TestHub};
use serde_json::{json, Value};

fn today_s_ports() -> Value {
    json!({"backend": 21000, "frontend": 21001, "postgres": 21002, "redis": 21003})
}

#[tokio::test]
async fn an_old_shaped_event_is_served_and_published_in_today_s_shape() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let pool = db.pool().await;
    let project = ProjectId::new();
    store_0_9_project_created(&pool, project).await;
    let id = project.as_uuid();

    // The event log (fed from the store) serves it upcast.
    let events = hub
        .events_eventually(json!({ "aggregateId": id.to_string() }), 1)
        .await;
    let created = &events[0];
    assert_eq!(created["eventType"], "ProjectCreated");
    assert_eq!(
        created["eventVersion"],
        domain::project::upcast::CURRENT_VERSION
    );
    assert_eq!(created["payload"]["ports"], today_s_ports());
    assert!(
        created["payload"].get("backend_port").is_none(),
        "no old field is left: {created}"
    );

    // The relay publishes it upcast.
    let js = context(&hub_tests::hub::nats_url()).await;
    let stream = hub.stream_name();
    let published = wait_until(
        "the relay to publish the event",
        Duration::from_secs(10),
        || {
            let js = js.clone();
            let stream = stream.clone();
            async move {
                // The hub makes its stream once it has reached NATS.
                js.get_stream(&stream).await.ok()?;
                let messages = read_stream(&js, &stream).await;
                hub_events(&messages)
                    .into_iter()
                    .find(|m| m.body["aggregate_id"] == json!(id.to_string()))
                    .cloned()
            }
        },
    )
    .await;
    assert_eq!(
        published.body["event_version"],
        domain::project::upcast::CURRENT_VERSION
    );
    assert_eq!(published.body["payload"]["ports"], today_s_ports());

    // The store still holds what the old build wrote.
    let (version, stored): (String, Value) =
        sqlx::query_as("SELECT event_version, payload FROM events WHERE aggregate_id = $1")
            .bind(id.to_string())
            .fetch_one(&pool)
            .await
            .expect("the stored event");
    assert_eq!(version, "0.9");
    assert_eq!(stored["ProjectCreated"]["backend_port"], 21000);

    // The aggregate and the projects read model read it too.
    let started = hub.start_project(&id.to_string(), Some(1)).await;
    assert!(started["errors"].is_null(), "start failed: {started}");
    let project = hub.project(&id.to_string()).await;
    assert_eq!(project["ports"], today_s_ports());
}
