//! The process's live feed from JetStream (what subscriptions and the event
//! socket follow) keeps passing events on when the NATS client that
//! announces reconnections is gone.

use std::time::Duration;

use hub_tests::hub::{delete_stream, nats_url};
use hub_tests::spawned::hub_id;
use hub_tests::wait_until;
use infrastructure::nats::{Envelope, LiveFeed, StreamSettings};
use infrastructure::Origin;
use tokio::sync::watch;
use uuid::Uuid;

fn envelope(subject: &str) -> Envelope {
    Envelope {
        id: Uuid::new_v4(),
        subject: subject.to_owned(),
        origin: Origin {
            hub_id: "test".to_owned(),
            service: "test".to_owned(),
            user: "anonymous".to_owned(),
        },
        correlation_id: None,
        causation_id: None,
        payload: serde_json::json!({}),
        timestamp: chrono::Utc::now(),
        aggregate_type: "IntegrationEvent".to_owned(),
        aggregate_id: Uuid::new_v4().to_string(),
        sequence: 1,
        event_type: "IntegrationEventPublished".to_owned(),
        event_version: "1.0".to_owned(),
        position: 1,
        transaction_id: 1,
    }
}

#[tokio::test]
async fn events_keep_arriving_after_the_reconnection_announcer_is_gone() {
    let hub = hub_id("live");
    let name = StreamSettings::default_name(&hub);
    let settings = StreamSettings::for_hub(&hub, name.clone(), Duration::from_secs(120));
    let client = async_nats::connect(nats_url()).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let (announcer, connections) = watch::channel(0);
    let feed = LiveFeed::start(js.clone(), settings, 16, connections.into());
    let mut live = feed.subscribe();
    drop(announcer);
    wait_until("the stream", Duration::from_secs(10), || async {
        js.get_stream(&name).await.ok()
    })
    .await;
    let subject = format!("hub.{hub}.audit.ping");
    // Published until the feed, which starts after what the stream holds
    // when it begins following, passes one on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let arrived = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event was passed on within 15 s"
        );
        let body = serde_json::to_vec(&envelope(&subject)).expect("JSON");
        js.publish(subject.clone(), body.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
        if let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), live.recv()).await {
            break event;
        }
    };
    assert_eq!(arrived.subject, format!("hub.{hub}.audit.ping"));
    drop(feed);
    delete_stream(&nats_url(), &name).await;
}
