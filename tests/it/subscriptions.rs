//! GraphQL subscriptions over `/graphql/ws`: project changes in both
//! protocols, resuming `events` after a cursor or a position during a burst
//! of writes, a subscriber that only listens, and one too slow for its
//! buffer.

use std::time::Duration;

use futures::stream::{self, StreamExt as _};
use hub_tests::ws::{Incoming, Protocol, WsClient, EVENTS, PROJECT_CHANGED};
use hub_tests::{wait_until, TestDb, TestHub};
use serde_json::{json, Value};

/// Long enough for a change to travel store, relay, NATS and live feed to a
/// subscriber on a busy test server.
const ARRIVES: Duration = Duration::from_secs(15);

fn ok(body: Value, what: &str) {
    assert!(body["errors"].is_null(), "{what} failed: {body}");
}

/// Reads `projectChanged` results of subscription `sub` until one for
/// project `id` (skipping other projects, such as probes); returns it.
async fn next_change_of(client: &mut WsClient, sub: &str, id: &str) -> Value {
    loop {
        let data = client.next_data(sub, ARRIVES).await;
        if data["projectChanged"]["id"] == id {
            return data["projectChanged"].clone();
        }
    }
}

/// The ids of the next `count` results of `events` subscription `sub`.
async fn next_event_ids(client: &mut WsClient, sub: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let data = client.next_data(sub, ARRIVES).await;
        ids.push(
            data["events"]["id"]
                .as_str()
                .expect("an event id")
                .to_owned(),
        );
    }
    ids
}

/// One event as the `events` query lists it.
#[derive(Clone, Debug)]
struct Logged {
    cursor: String,
    id: String,
    position: i64,
}

/// The `events` query's list, once it holds `count` events (the event log
/// is a projection and may trail the store).
async fn event_log(hub: &TestHub, count: usize) -> Vec<Logged> {
    let what = format!("the event log to list {count} events");
    wait_until(&what, ARRIVES, || async {
        let body = hub
            .graphql(
                "{ events(first: 1000) { edges { cursor node { id position } } } }",
                json!({}),
            )
            .await;
        let edges = body["data"]["events"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("events failed: {body}"));
        (edges.len() == count).then(|| {
            edges
                .iter()
                .map(|edge| Logged {
                    cursor: edge["cursor"].as_str().expect("a cursor").to_owned(),
                    id: edge["node"]["id"].as_str().expect("an id").to_owned(),
                    position: edge["node"]["position"].as_i64().expect("a position"),
                })
                .collect()
        })
    })
    .await
}

fn ids(events: &[Logged]) -> Vec<String> {
    events.iter().map(|event| event.id.clone()).collect()
}

async fn project_changed_shows_the_status_after_each_change(protocol: Protocol) {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let mut client = WsClient::connect_and_init(&hub, protocol, json!({})).await;
    client
        .subscribe("changes", PROJECT_CHANGED, json!({}))
        .await;
    client.wait_live_creating_probes("changes", &hub).await;

    let id = hub.create_project("Lifecycle", "/srv/lifecycle").await;
    let created = next_change_of(&mut client, "changes", &id).await;
    assert_eq!(
        (&created["status"], &created["version"]),
        (&json!("STOPPED"), &json!(1))
    );
    ok(hub.start_project(&id, None).await, "start");
    let starting = changes_until(&mut client, &id, "RUNNING").await;
    ok(hub.stop_project(&id, None).await, "stop");
    let stopping = changes_until(&mut client, &id, "STOPPED").await;
    // Each change shows the project at its own version, so the request is
    // seen even when the noop orchestrator completes it at once.
    assert_states(&starting, &[("STARTING", 2), ("RUNNING", 3)]);
    assert_states(&stopping, &[("STOPPING", 4), ("STOPPED", 5)]);
}

/// The `(status, version)` of each change of project `id` until one shows
/// `status`.
async fn changes_until(client: &mut WsClient, id: &str, status: &str) -> Vec<(String, i64)> {
    let mut seen = Vec::new();
    loop {
        let project = next_change_of(client, "changes", id).await;
        let entry = (
            project["status"].as_str().unwrap_or_default().to_owned(),
            project["version"].as_i64().unwrap_or_default(),
        );
        let done = entry.0 == status;
        seen.push(entry);
        if done {
            return seen;
        }
    }
}

fn assert_states(seen: &[(String, i64)], all: &[(&str, i64)]) {
    let all: Vec<(String, i64)> = all.iter().map(|(s, v)| ((*s).to_owned(), *v)).collect();
    assert_eq!(seen, all);
}

#[tokio::test]
async fn project_changed_over_graphql_transport_ws_shows_stopped_running_stopped() {
    project_changed_shows_the_status_after_each_change(Protocol::TransportWs).await;
}

#[tokio::test]
async fn project_changed_over_legacy_graphql_ws_shows_stopped_running_stopped() {
    project_changed_shows_the_status_after_each_change(Protocol::LegacyWs).await;
}

#[tokio::test]
async fn events_after_a_cursor_or_a_position_resume_without_gap_or_duplicate_during_a_burst() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    // Each project: created, start requested, started (by the orchestrator).
    for i in 0..3 {
        let id = hub
            .create_project(&format!("Early {i}"), &format!("/srv/early-{i}"))
            .await;
        hub.start_and_wait(&id).await;
    }
    let sixth = event_log(&hub, 9).await[5].clone();
    let mut by_cursor = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    let mut by_position = WsClient::connect_and_init(&hub, Protocol::LegacyWs, json!({})).await;

    // Sixty more events, four projects at a time (more would only queue
    // for database connections on a small machine), with both subscriptions
    // starting among them, so the seam between replay and live falls inside
    // the burst.
    let burst = stream::iter(0..20).for_each_concurrent(4, |i| {
        let hub = &hub;
        async move {
            let id = hub
                .create_project(&format!("Burst {i}"), &format!("/srv/burst-{i}"))
                .await;
            hub.start_and_wait(&id).await;
        }
    });
    let subscribe = async {
        by_cursor
            .subscribe("after-cursor", EVENTS, json!({ "after": sixth.cursor }))
            .await;
        by_position
            .subscribe(
                "after-position",
                EVENTS,
                json!({ "after": sixth.position.to_string() }),
            )
            .await;
    };
    tokio::join!(burst, subscribe);

    let expected = ids(&event_log(&hub, 69).await[6..]);
    for (client, sub) in [
        (&mut by_cursor, "after-cursor"),
        (&mut by_position, "after-position"),
    ] {
        let got = next_event_ids(client, sub, expected.len()).await;
        assert_eq!(
            got, expected,
            "{sub}: every event after the sixth, once, in order"
        );
        assert_eq!(
            client.try_next(Duration::from_millis(300)).await,
            None,
            "{sub}: nothing after the last event"
        );
    }
}

#[tokio::test]
async fn a_subscriber_that_only_listens_keeps_receiving_for_seconds() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Listener", "/srv/listener").await;
    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    client.never_answer();
    // Replaying from the start: the first result shows the subscription is live.
    client
        .subscribe("events", EVENTS, json!({ "after": "0" }))
        .await;
    let first = client.next_data("events", ARRIVES).await;
    assert_eq!(first["events"]["eventType"], "ProjectCreated");

    // The passing of time is what is under test: a change every half second
    // for several seconds while the client sends nothing at all.
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(500));
    for i in 0..8 {
        ticks.tick().await;
        ok(
            hub.rename_project(&id, &format!("Listener {i}")).await,
            "rename",
        );
        let data = client.next_data("events", ARRIVES).await;
        assert_eq!(data["events"]["eventType"], "ProjectRenamed");
        assert_eq!(data["events"]["aggregateId"], json!(id));
    }
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_its_buffer_is_told_to_resubscribe_with_after() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.ws.subscriber_buffer = 4;
    let hub = TestHub::start_with(config).await;
    hub.create_project("Slow 0", "/srv/slow-0").await;

    // Each result repeats the event's payload (with a 4 kB path) 200 times:
    // about 800 kB a message, so thirty of them cannot hide in socket
    // buffers, and the server has to wait for this client.
    let fields: String = (0..200).map(|i| format!(" p{i}: payload")).collect();
    let query =
        format!("subscription($after: String) {{ events(after: $after) {{ id cursor{fields} }} }}");
    let mut client = WsClient::connect_with_receive_buffer(&hub, Protocol::TransportWs, 4096).await;
    client.init(json!({})).await.expect("connection_ack");
    client
        .subscribe("slow", &query, json!({ "after": "0" }))
        .await;
    let first = client.next_data("slow", ARRIVES).await;
    let mut received = vec![first["events"]["id"].as_str().expect("an id").to_owned()];

    let long = "x".repeat(4000);
    for i in 1..=30 {
        hub.create_project(&format!("Slow {i}"), &format!("/srv/{long}/{i}"))
            .await;
    }
    let all = ids(&event_log(&hub, 31).await);

    let message = loop {
        match client.next(ARRIVES).await {
            Incoming::Next { id, payload } if id == "slow" => {
                if let Some(message) = payload["errors"][0]["message"].as_str() {
                    break message.to_owned();
                }
                let event = payload["data"]["events"]["id"].as_str().expect("an id");
                received.push(event.to_owned());
                assert!(
                    received.len() < all.len(),
                    "all {} events arrived: the subscriber never fell behind, so this test proves nothing",
                    all.len()
                );
            }
            other => panic!("expected results or the lag error, got {other:?}"),
        }
    };
    assert!(message.contains("resubscribe with after"), "{message}");
    assert_eq!(
        client.next(ARRIVES).await,
        Incoming::Complete { id: "slow".into() }
    );
    assert_eq!(
        received,
        all[..received.len()],
        "what arrived before the error has no gap"
    );

    // The cursor in the message continues exactly where the results stopped.
    let cursor = message
        .split("after: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the message names a cursor: {message}"));
    client
        .subscribe("resume", EVENTS, json!({ "after": cursor }))
        .await;
    let rest = next_event_ids(&mut client, "resume", all.len() - received.len()).await;
    assert_eq!([received, rest].concat(), all);
}
