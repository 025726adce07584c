//! Two hub processes on one database and one NATS: one of them runs the
//! relay, and a subscriber of either sees the changes made through the other.

use std::time::Duration;

use hub_tests::jetstream::health_report;
use hub_tests::ws::{Protocol, WsClient, PROJECT_CHANGED};
use hub_tests::{holds_for, wait_until, TestDb, TestHub};
use serde_json::json;

/// Whether each hub runs the relay, as its `/health` says.
async fn relay_active(hubs: [&TestHub; 2]) -> [bool; 2] {
    let mut active = [false; 2];
    for (i, hub) in hubs.into_iter().enumerate() {
        active[i] = health_report(hub).await.consumer("nats_relay").active_here;
    }
    active
}

#[tokio::test]
async fn two_hubs_on_one_database_run_one_relay_and_share_live_changes() {
    let db = TestDb::create().await;
    let config = TestHub::config(db.url());
    let hub_a = TestHub::start_with(config.clone()).await;
    let mut hub_b = TestHub::start_with(config).await;
    // Both use one stream; hub A deletes it when dropped.
    hub_b.keep_stream();

    let hubs = [&hub_a, &hub_b];
    wait_until(
        "exactly one hub to run the relay",
        Duration::from_secs(15),
        || async move {
            let [a, b] = relay_active(hubs).await;
            (a != b).then_some(())
        },
    )
    .await;
    holds_for(
        "exactly one hub running the relay",
        Duration::from_millis(500),
        || async move {
            let [a, b] = relay_active(hubs).await;
            a != b
        },
    )
    .await;

    let mut client = WsClient::connect_and_init(&hub_b, Protocol::TransportWs, json!({})).await;
    client
        .subscribe("changes", PROJECT_CHANGED, json!({}))
        .await;
    client.wait_live_creating_probes("changes", &hub_a).await;

    let id = hub_a.create_project("Shared", "/srv/shared").await;
    let body = hub_a.start_project(&id, None).await;
    assert!(body["errors"].is_null(), "start on hub A failed: {body}");
    let seen = loop {
        let data = client.next_data("changes", Duration::from_secs(15)).await;
        let project = &data["projectChanged"];
        if project["id"] == json!(id) && project["status"] == "RUNNING" {
            break project.clone();
        }
    };
    // 1 created, 2 start requested, 3 started (by whichever hub runs the
    // process manager).
    assert_eq!(seen["version"], 3);
    assert_eq!(seen["name"], "Shared");
}
