//! The outbox relay publishes every committed event to JetStream, once.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use hub_tests::hub::nats_url;
use hub_tests::{wait_until, TestDb, TestHub};
use serde_json::{json, Value};

async fn stream_messages(
    stream_name: &str,
    expected: usize,
) -> Vec<(String, Value, async_nats::HeaderMap)> {
    let client = async_nats::connect(nats_url())
        .await
        .expect("connect to NATS");
    let js = jetstream::new(client);
    let stream = wait_until("the hub's stream to exist", Duration::from_secs(10), || {
        let js = js.clone();
        async move { js.get_stream(stream_name).await.ok() }
    })
    .await;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    while out.len() < expected {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} messages arrived", out.len()))
            .expect("stream ended")
            .expect("message");
        let body: Value = serde_json::from_slice(&message.payload).expect("JSON body");
        out.push((
            message.subject.to_string(),
            body,
            message.headers.clone().unwrap_or_default(),
        ));
    }
    out
}

#[tokio::test]
async fn every_event_of_a_lifecycle_arrives_on_its_subject_with_the_envelope() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Relay Demo", "/srv/relay").await;
    for mutation in ["startProject", "stopProject", "deleteProject"] {
        let body = hub
            .graphql(
                &format!(
                    "mutation($id: ID!) {{ {mutation}(id: $id) {{ project {{ version }} }} }}"
                ),
                json!({ "id": id }),
            )
            .await;
        assert!(body["errors"].is_null(), "{mutation} failed: {body}");
    }
    let messages = stream_messages(&hub.stream_name(), 4).await;
    let subjects: Vec<&str> = messages.iter().map(|(s, _, _)| s.as_str()).collect();
    let prefix = format!("hub.{}.project", hub.hub_id());
    assert_eq!(
        subjects,
        vec![
            format!("{prefix}.created"),
            format!("{prefix}.started"),
            format!("{prefix}.stopped"),
            format!("{prefix}.deleted"),
        ]
    );
    let pool = db.pool().await;
    let stored: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT event_id, sequence FROM events ORDER BY transaction_id, position")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored.len(),
        messages.len(),
        "stream and store hold the same number of events"
    );
    for ((subject, body, headers), (event_id, sequence)) in messages.iter().zip(&stored) {
        assert_eq!(body["id"], json!(event_id.to_string()));
        assert_eq!(body["subject"], json!(subject));
        assert_eq!(body["sequence"], json!(sequence));
        assert_eq!(body["aggregate_type"], json!("Project"));
        assert_eq!(body["aggregate_id"], json!(id));
        assert_eq!(body["origin"]["hub_id"], json!(hub.hub_id()));
        assert!(body["correlation_id"].is_string());
        assert!(body["timestamp"].is_string());
        assert!(body["position"].is_i64());
        assert_eq!(body["event_version"], json!("1.0"));
        assert!(body["payload"].is_object());
        assert_eq!(
            headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()),
            Some(event_id.to_string())
        );
        assert_eq!(
            headers.get("Hub-Event-Type").map(|v| v.as_str().to_owned()),
            body["event_type"].as_str().map(str::to_owned)
        );
        assert!(headers.get("Hub-Correlation-Id").is_some());
        assert!(headers.get("Hub-Causation-Id").is_some());
    }
    assert_eq!(messages[0].1["payload"]["name"], json!("Relay Demo"));
}
