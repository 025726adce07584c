//! NATS goes away while the hub takes commands and comes back: commands keep
//! working, `/health` says the hub is degraded, and the relay then catches
//! up with every event exactly once and in order. Uses a private
//! `nats-server`, so the shared one is never stopped.

use std::time::Duration;

use hub_tests::feed::stored_event_ids;
use hub_tests::graphql::view;
use hub_tests::jetstream::{
    assert_stream_holds, context, health_report, message_count, read_stream,
};
use hub_tests::ops::payload;
use hub_tests::views::{HealthStatus, LiveEvent};
use hub_tests::ws::{Protocol, WsClient, EVENTS};
use hub_tests::{wait_until, NatsServer, TestDb, TestHub};
use serde_json::json;
use sqlx::PgPool;

/// Long enough for the NATS client to reconnect (its backoff reaches a few
/// seconds) and the relay to retry (its backoff is capped at 5 s).
const RECOVERS: Duration = Duration::from_secs(30);

async fn store_count(pool: &PgPool) -> u64 {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .expect("count the events");
    count as u64
}

/// Waits until the hub reports no relay lag and the stream holds as many
/// messages as the store holds events; returns the store's count.
async fn wait_until_relayed(hub: &TestHub, nats_url: &str, pool: &PgPool) -> u64 {
    wait_until(
        "the relay to catch up with the store",
        RECOVERS,
        || async move {
            let report = health_report(hub).await;
            if report.relay_lag != Some(0) {
                return None;
            }
            let stored = store_count(pool).await;
            // A fresh connection each time: the one from before an outage
            // may still be reconnecting.
            let js = context(nats_url).await;
            (message_count(&js, &hub.stream_name()).await == Some(stored)).then_some(stored)
        },
    )
    .await
}

#[tokio::test]
async fn commands_made_while_nats_is_down_succeed_and_are_relayed_once_in_order_after_it_returns() {
    let mut nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = nats.url();
    let hub = TestHub::start_with(config).await;
    let pool = db.pool().await;

    let first = hub.create_project("Outage A", "/srv/outage-a").await;
    hub.start_and_wait(&first).await;
    assert_eq!(wait_until_relayed(&hub, &nats.url(), &pool).await, 3);

    nats.stop();
    let report = wait_until("/health to report NATS down", RECOVERS, || async {
        let report = health_report(&hub).await;
        (report.status == HealthStatus::Degraded && !report.nats.connected).then_some(report)
    })
    .await;
    assert!(report.database.connected, "{report:?}");

    // Commands, and the orchestrator's completions, go on while NATS is down.
    let second = hub.create_project("Outage B", "/srv/outage-b").await;
    hub.start_and_wait(&second).await;
    hub.stop_and_wait(&first).await;
    payload(
        &hub.rename_project(&second, "Outage B2").await,
        "renameProject",
    );
    hub.start_and_wait(&first).await;
    assert_eq!(store_count(&pool).await, 11);
    let report = health_report(&hub).await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(
        report.relay_lag.is_some_and(|lag| lag > 0),
        "events wait for NATS: {report:?}"
    );

    nats.restart().await;
    assert_eq!(wait_until_relayed(&hub, &nats.url(), &pool).await, 11);
    wait_until("/health to report healthy again", RECOVERS, || async {
        (health_report(&hub).await.status == HealthStatus::Healthy).then_some(())
    })
    .await;

    let js = context(&nats.url()).await;
    let messages = read_stream(&js, &hub.stream_name()).await;
    assert_eq!(messages.len(), 11, "only hub events are in the stream");
    assert_stream_holds(&messages, &stored_event_ids(&pool).await);
}

/// A hub on the private NATS server `nats`, once it has reached it.
async fn hub_on(nats: &NatsServer, db: &TestDb) -> TestHub {
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = nats.url();
    let hub = TestHub::start_with(config).await;
    wait_until("the hub to reach NATS", RECOVERS, || async {
        (health_report(&hub).await.status == HealthStatus::Healthy).then_some(())
    })
    .await;
    hub
}

/// A subscriber of `events(after: "0")` that has received the first
/// event, a project's creation (so the subscription is registered).
async fn subscribe_from_the_start(hub: &TestHub) -> WsClient {
    let mut client = WsClient::connect_and_init(hub, Protocol::TransportWs, json!({})).await;
    client
        .subscribe("events", EVENTS, json!({ "after": "0" }))
        .await;
    assert_eq!(next_event(&mut client).await.event_type, "ProjectCreated");
    client
}

/// The next event subscription `events` delivers.
async fn next_event(client: &mut WsClient) -> LiveEvent {
    view(&client.next_data("events", RECOVERS).await["events"])
}

async fn stop_nats(nats: &mut NatsServer, hub: &TestHub) {
    nats.stop();
    wait_until("/health to report NATS down", RECOVERS, || async {
        (!health_report(hub).await.nats.connected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_receives_the_events_written_during_a_nats_outage_once_nats_returns() {
    let mut nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let hub = hub_on(&nats, &db).await;
    let id = hub.create_project("Outage Live", "/srv/outage-live").await;
    let mut client = subscribe_from_the_start(&hub).await;
    // A live event before the outage, so this process's live feed has a
    // stream position to resume from.
    payload(&hub.start_project(&id, None).await, "startProject");
    assert_eq!(
        next_event(&mut client).await.event_type,
        "ProjectStartRequested"
    );
    assert_eq!(next_event(&mut client).await.event_type, "ProjectStarted");

    stop_nats(&mut nats, &hub).await;
    hub.stop_and_wait(&id).await;
    nats.restart().await;
    for event_type in ["ProjectStopRequested", "ProjectStopped"] {
        let resumed = next_event(&mut client).await;
        assert_eq!(resumed.event_type, event_type);
        assert_eq!(resumed.aggregate_id, id);
    }
}

#[tokio::test]
async fn a_subscriber_receives_the_events_written_during_a_nats_outage_even_when_none_were_live_before(
) {
    let mut nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let hub = hub_on(&nats, &db).await;
    stop_nats(&mut nats, &hub).await;
    // The creation reaches the subscriber as a replay from the store: the
    // live feed has passed on no message yet.
    let id = hub.create_project("Outage Live", "/srv/outage-live").await;
    let mut client = subscribe_from_the_start(&hub).await;
    // During the outage.
    payload(&hub.start_project(&id, None).await, "startProject");
    nats.restart().await;
    for event_type in ["ProjectStartRequested", "ProjectStarted"] {
        let resumed = next_event(&mut client).await;
        assert_eq!(resumed.event_type, event_type);
        assert_eq!(resumed.aggregate_id, id);
    }
}
