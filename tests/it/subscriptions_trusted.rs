//! Subscriptions a frontend can trust: `projectChanged(id)` sends the
//! current state first (or every version after `sinceVersion`), then every
//! version as its own message, whatever the timing of subscribe, query and
//! change, and ends after a delete; `projectsChanged` sends a snapshot, or
//! the changes after a cursor, then every change exactly once. Both
//! WebSocket protocols, with and without a token.

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::{self, StreamExt as _};
use hub_tests::ops::{self, payload};
use hub_tests::ws::{Incoming, Protocol, WsClient};
use hub_tests::{wait_until, TestDb, TestHub};
use infrastructure::feed::FeedPosition;
use projections::cursor::{decode_event_cursor, encode_event_cursor};
use secrecy::SecretString;
use serde_json::{json, Value};

/// Long enough for a change to travel store, relay, NATS and live feed to a
/// subscriber on a busy test server.
const ARRIVES: Duration = Duration::from_secs(15);

/// `projectChanged` with every argument and the fields tests look at.
const PROJECT_CHANGED: &str = "subscription($id: ID, $since: Int, $coalesce: Boolean! = false) { \
     projectChanged(id: $id, sinceVersion: $since, coalesce: $coalesce) { id name status version deleted } }";

/// `projectsChanged` with the fields tests look at.
const PROJECTS_CHANGED: &str = "subscription($after: String) { projectsChanged(after: $after) { \
     kind cursor project { id name status version deleted } } }";

const BOTH: [Protocol; 2] = [Protocol::TransportWs, Protocol::LegacyWs];

/// The data of the next result of subscription `sub` (a `connection_ack`
/// before it is skipped); `None` when nothing comes within `ARRIVES`.
async fn try_next_result(client: &mut WsClient, sub: &str) -> Option<Value> {
    loop {
        match client.try_next(ARRIVES).await? {
            Incoming::Ack => continue,
            Incoming::Next { id, payload } if id == sub => {
                assert!(
                    payload["errors"].is_null(),
                    "subscription {sub} failed: {payload}"
                );
                return Some(payload["data"].clone());
            }
            other => panic!("expected a result of subscription {sub}, got {other:?}"),
        }
    }
}

/// The next `projectChanged` of subscription `sub`.
async fn next_project(client: &mut WsClient, sub: &str) -> Value {
    let data = try_next_result(client, sub)
        .await
        .unwrap_or_else(|| panic!("no result of subscription {sub} within {ARRIVES:?}"));
    data["projectChanged"].clone()
}

/// The next `projectsChanged` of subscription `sub`.
async fn next_change(client: &mut WsClient, sub: &str) -> Value {
    let data = try_next_result(client, sub)
        .await
        .unwrap_or_else(|| panic!("no result of subscription {sub} within {ARRIVES:?}"));
    data["projectsChanged"].clone()
}

fn version(project: &Value) -> i64 {
    project["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("a version: {project}"))
}

/// `(status, version)` of a project.
fn state(project: &Value) -> (String, i64) {
    (
        project["status"].as_str().unwrap_or_default().to_owned(),
        version(project),
    )
}

/// The version a mutation's answer shows.
fn answered(body: &Value, field: &str) -> i64 {
    version(payload(body, field))
}

/// Reads `projectChanged` results of `sub` until one at `until` or later.
///
/// # Panics
/// When none comes: the change was lost.
async fn versions_until(client: &mut WsClient, sub: &str, until: i64, what: &str) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::new();
    while seen.last().is_none_or(|last| version(last) < until) {
        match try_next_result(client, sub).await {
            Some(data) => seen.push(data["projectChanged"].clone()),
            None => panic!("{what}: version {until} never arrived; saw {seen:?}"),
        }
    }
    seen
}

/// Each version one more than the one before.
fn assert_consecutive(seen: &[Value], what: &str) {
    let versions: Vec<i64> = seen.iter().map(version).collect();
    assert!(
        versions.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{what}: versions {versions:?}"
    );
}

/// The `extensions.code` a subscription was refused with: an `error`, or
/// a result with errors and then the end of the subscription.
async fn refusal(client: &mut WsClient, sub: &str) -> String {
    let code = |payload: &Value| {
        let errors = if payload.is_array() {
            payload
        } else {
            &payload["errors"]
        };
        errors[0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{sub}: expected a refusal, got {payload}"))
            .to_owned()
    };
    loop {
        match client.next(ARRIVES).await {
            Incoming::Ack => continue,
            Incoming::Error { id, payload } if id == sub => return code(&payload),
            Incoming::Next { id, payload } if id == sub => {
                let code = code(&payload);
                assert_completes(client, sub).await;
                return code;
            }
            other => panic!("expected the refusal of {sub}, got {other:?}"),
        }
    }
}

/// The next message is the end of subscription `sub`.
async fn assert_completes(client: &mut WsClient, sub: &str) {
    assert_eq!(
        client.next(ARRIVES).await,
        Incoming::Complete { id: sub.into() },
        "{sub} completes"
    );
}

#[tokio::test]
async fn a_change_made_right_after_subscribing_is_never_lost() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Race A", "/srv/race-a").await;
    for attempt in 0..100 {
        let what = format!("attempt {attempt}");
        let mut client = WsClient::connect(&hub, BOTH[attempt % 2]).await;
        // As a lazily connecting client and its page do: init, then the
        // subscription and the change at once, nothing waited for.
        client
            .send(json!({ "type": "connection_init", "payload": {} }))
            .await;
        let name = format!("Race A {attempt}");
        let ((), body) = tokio::join!(
            client.subscribe("p", PROJECT_CHANGED, json!({ "id": id })),
            hub.rename_project(&id, &name)
        );
        let renamed = answered(&body, "renameProject");

        let seen = versions_until(&mut client, "p", renamed, &what).await;
        assert!(
            version(&seen[0]) >= renamed - 1,
            "{what}: the first message is the current state: {seen:?}"
        );
        assert_consecutive(&seen, &what);
        assert_eq!(seen.last().unwrap()["name"], json!(name), "{what}");
    }
}

#[tokio::test]
async fn a_change_between_a_query_and_the_subscription_is_never_lost() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Race B", "/srv/race-b").await;
    for attempt in 0..100 {
        let what = format!("attempt {attempt}");
        let queried = version(&hub.project(&id).await);
        // Another client changes the project between the query and the
        // subscription.
        let name = format!("Race B {attempt}");
        let renamed = answered(&hub.rename_project(&id, &name).await, "renameProject");
        assert_eq!(renamed, queried + 1, "{what}");

        let mut client = WsClient::connect_and_init(&hub, BOTH[attempt % 2], json!({})).await;
        let since = (attempt % 4 >= 2).then_some(queried);
        client
            .subscribe("p", PROJECT_CHANGED, json!({ "id": id, "since": since }))
            .await;
        let first = next_project(&mut client, "p").await;
        assert_eq!(
            (version(&first), &first["name"]),
            (renamed, &json!(name)),
            "{what} (sinceVersion {since:?})"
        );
    }
}

#[tokio::test]
async fn a_subscriber_that_reconnects_with_since_version_gets_exactly_what_it_missed_then_live_changes(
) {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    for protocol in BOTH {
        let id = hub
            .create_project(&format!("Resume {protocol:?}"), "/srv/resume")
            .await;
        let mut client = WsClient::connect_and_init(&hub, protocol, json!({})).await;
        client
            .subscribe("p", PROJECT_CHANGED, json!({ "id": id }))
            .await;
        assert_eq!(version(&next_project(&mut client, "p").await), 1);
        let name = format!("Seen {protocol:?}");
        let renamed = answered(&hub.rename_project(&id, &name).await, "renameProject");
        let seen = next_project(&mut client, "p").await;
        assert_eq!((version(&seen), &seen["name"]), (renamed, &json!(name)));
        drop(client);

        let mut missed = Vec::new();
        for name in ["Missed 1", "Missed 2", "Missed 3"] {
            let body = hub
                .rename_project(&id, &format!("{name} {protocol:?}"))
                .await;
            missed.push((
                answered(&body, "renameProject"),
                format!("{name} {protocol:?}"),
            ));
        }

        let mut client = WsClient::connect_and_init(&hub, protocol, json!({})).await;
        client
            .subscribe(
                "p",
                PROJECT_CHANGED,
                json!({ "id": id, "since": seen["version"] }),
            )
            .await;
        let mut got = Vec::new();
        for _ in 0..3 {
            let project = next_project(&mut client, "p").await;
            got.push((
                version(&project),
                project["name"].as_str().unwrap().to_owned(),
            ));
        }
        assert_eq!(
            got, missed,
            "{protocol:?}: exactly the three missed, in order"
        );
        // The next message is the next change: nothing else came between.
        let name = format!("Live {protocol:?}");
        let live = answered(&hub.rename_project(&id, &name).await, "renameProject");
        let project = next_project(&mut client, "p").await;
        assert_eq!((version(&project), &project["name"]), (live, &json!(name)));
    }
}

#[tokio::test]
async fn every_transition_of_fifty_start_stop_cycles_is_its_own_message_in_version_order() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Cycles", "/srv/cycles").await;
    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    client
        .subscribe("p", PROJECT_CHANGED, json!({ "id": id }))
        .await;
    assert_eq!(
        state(&next_project(&mut client, "p").await),
        ("STOPPED".into(), 1)
    );
    let mut at = 1;
    for cycle in 0..50 {
        // The noop orchestrator completes each request at once: the
        // request and its completion commit within moments of each other.
        payload(&hub.start_project(&id, None).await, "startProject");
        let mut seen = vec![
            state(&next_project(&mut client, "p").await),
            state(&next_project(&mut client, "p").await),
        ];
        payload(&hub.stop_project(&id, None).await, "stopProject");
        seen.push(state(&next_project(&mut client, "p").await));
        seen.push(state(&next_project(&mut client, "p").await));
        let expected = [
            ("STARTING".to_owned(), at + 1),
            ("RUNNING".to_owned(), at + 2),
            ("STOPPING".to_owned(), at + 3),
            ("STOPPED".to_owned(), at + 4),
        ];
        assert_eq!(seen, expected, "cycle {cycle}");
        at += 4;
    }

    // The whole history again from the store (several pages of it), then
    // live.
    let mut replay = WsClient::connect_and_init(&hub, Protocol::LegacyWs, json!({})).await;
    replay
        .subscribe("all", PROJECT_CHANGED, json!({ "id": id, "since": 0 }))
        .await;
    let mut versions = Vec::new();
    for _ in 0..at {
        versions.push(version(&next_project(&mut replay, "all").await));
    }
    assert_eq!(versions, (1..=at).collect::<Vec<i64>>());
    let renamed = answered(&hub.rename_project(&id, "Cycled").await, "renameProject");
    assert_eq!(version(&next_project(&mut replay, "all").await), renamed);
}

/// A selection of `projectChanged` that repeats the project's path (give it
/// a 4 kB one) 200 times: about 800 kB a message, so that a client that does
/// not read holds the server up after a few messages.
fn heavy_project_changed(arguments: &str) -> String {
    let fields: String = (0..200).map(|i| format!(" p{i}: path")).collect();
    format!(
        "subscription($id: ID) {{ projectChanged(id: $id{arguments}) {{ version status{fields} }} }}"
    )
}

fn long_path(name: &str) -> String {
    format!("/srv/{}/{name}", "x".repeat(4000))
}

#[tokio::test]
async fn a_subscriber_that_reads_late_still_gets_every_transition_in_order() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Late", &long_path("late")).await;
    let mut slow = WsClient::connect_with_receive_buffer(&hub, Protocol::TransportWs, 4096).await;
    slow.init(json!({})).await.expect("connection_ack");
    slow.subscribe("slow", &heavy_project_changed(""), json!({ "id": id }))
        .await;
    assert_eq!(version(&next_project(&mut slow, "slow").await), 1);
    // Ten cycles while the client reads nothing: the server is held up
    // after a few messages, and the rest of the changes wait for it.
    for _ in 0..10 {
        hub.start_and_wait(&id).await;
        hub.stop_and_wait(&id).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 40 {
        match try_next_result(&mut slow, "slow").await {
            Some(data) => seen.push(state(&data["projectChanged"])),
            None => panic!("only {} of 40 versions arrived: {seen:?}", seen.len()),
        }
    }
    let expected: Vec<(String, i64)> = (0..10)
        .flat_map(|cycle| {
            ["STARTING", "RUNNING", "STOPPING", "STOPPED"]
                .iter()
                .enumerate()
                .map(move |(i, status)| ((*status).to_owned(), 2 + 4 * cycle + i as i64))
        })
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn coalesce_sends_only_the_latest_state_of_what_is_pending() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Coalesce", &long_path("coalesce")).await;
    for i in 1..=10 {
        hub.rename_project(&id, &format!("Coalesce {i}")).await;
    }

    // Behind by ten versions: one message, the latest.
    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    client
        .subscribe(
            "p",
            PROJECT_CHANGED,
            json!({ "id": id, "since": 0, "coalesce": true }),
        )
        .await;
    let latest = next_project(&mut client, "p").await;
    assert_eq!(
        (version(&latest), &latest["name"]),
        (11, &json!("Coalesce 10"))
    );
    let live = answered(
        &hub.rename_project(&id, "Coalesce live").await,
        "renameProject",
    );
    assert_eq!(version(&next_project(&mut client, "p").await), live);

    // Behind while live: a client that stops reading while 30 changes are
    // made sees fewer messages, versions still increasing, ending at the
    // last.
    let query = heavy_project_changed(", coalesce: true");
    let mut slow = WsClient::connect_with_receive_buffer(&hub, Protocol::TransportWs, 4096).await;
    slow.init(json!({})).await.expect("connection_ack");
    slow.subscribe("slow", &query, json!({ "id": id })).await;
    assert_eq!(version(&next_project(&mut slow, "slow").await), live);
    let mut last = live;
    for i in 0..30 {
        last = answered(
            &hub.rename_project(&id, &format!("Coalesce slow {i}")).await,
            "renameProject",
        );
    }
    let mut versions = Vec::new();
    while versions.last() != Some(&last) {
        versions.push(version(&next_project(&mut slow, "slow").await));
    }
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "{versions:?}"
    );
    assert!(
        versions.len() < 30,
        "30 changes behind, every one was sent: {versions:?}"
    );
}

#[tokio::test]
async fn a_deleted_project_gets_a_last_message_marked_deleted_then_the_subscription_completes() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Doomed", "/srv/doomed").await;
    let mut client = WsClient::connect_and_init(&hub, Protocol::LegacyWs, json!({})).await;
    client
        .subscribe("p", PROJECT_CHANGED, json!({ "id": id }))
        .await;
    let created = next_project(&mut client, "p").await;
    assert_eq!(created["deleted"], json!(false));

    let deleted = answered(&hub.delete_project(&id).await, "deleteProject");
    let last = next_project(&mut client, "p").await;
    assert_eq!(
        (state(&last), &last["deleted"]),
        (("DELETED".to_owned(), deleted), &json!(true))
    );
    assert_completes(&mut client, "p").await;

    // Subscribing to it afterwards: its last state, then the end.
    for (sub, since) in [("again", None), ("since", Some(1))] {
        client
            .subscribe(sub, PROJECT_CHANGED, json!({ "id": id, "since": since }))
            .await;
        let last = next_project(&mut client, sub).await;
        assert_eq!(
            (state(&last), &last["deleted"]),
            (("DELETED".to_owned(), deleted), &json!(true))
        );
        assert_completes(&mut client, sub).await;
    }
}

#[tokio::test]
async fn unknown_projects_impossible_versions_and_foreign_cursors_are_refused_with_their_codes() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Refusals", "/srv/refusals").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let missing = encode_event_cursor(FeedPosition {
        transaction_id: 1,
        position: 1_000_000,
    });
    let cases = [
        (PROJECT_CHANGED, json!({ "id": unknown }), "NOT_FOUND"),
        (
            PROJECT_CHANGED,
            json!({ "id": id, "since": -1 }),
            "INVALID_INPUT",
        ),
        (
            PROJECT_CHANGED,
            json!({ "id": id, "since": 2 }),
            "INVALID_INPUT",
        ),
        (PROJECT_CHANGED, json!({ "since": 0 }), "INVALID_INPUT"),
        (
            PROJECT_CHANGED,
            json!({ "id": "not-a-uuid" }),
            "INVALID_INPUT",
        ),
        (
            PROJECTS_CHANGED,
            json!({ "after": "not a cursor" }),
            "RESYNC_REQUIRED",
        ),
        (
            PROJECTS_CHANGED,
            json!({ "after": missing }),
            "RESYNC_REQUIRED",
        ),
        (
            PROJECTS_CHANGED,
            json!({ "after": "1000000" }),
            "RESYNC_REQUIRED",
        ),
    ];
    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    for (n, (query, variables, code)) in cases.into_iter().enumerate() {
        let sub = format!("case-{n}");
        client.subscribe(&sub, query, variables.clone()).await;
        assert_eq!(refusal(&mut client, &sub).await, code, "{variables}");
    }
    // The socket still serves.
    client
        .subscribe("ok", PROJECT_CHANGED, json!({ "id": id, "since": 1 }))
        .await;
    let renamed = answered(
        &hub.rename_project(&id, "Still served").await,
        "renameProject",
    );
    assert_eq!(version(&next_project(&mut client, "ok").await), renamed);
}

/// `(kind, project id, version)` of a board message.
fn change(message: &Value) -> (String, String, i64) {
    (
        message["kind"].as_str().unwrap_or_default().to_owned(),
        message["project"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        message["project"]["version"].as_i64().unwrap_or_default(),
    )
}

fn cursor(message: &Value) -> FeedPosition {
    decode_event_cursor(message["cursor"].as_str().expect("a cursor")).expect("an event cursor")
}

#[tokio::test]
async fn the_board_sends_a_snapshot_then_every_change() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let a = hub.create_project("Board A", "/srv/board-a").await;
    let b = hub.create_project("Board B", "/srv/board-b").await;
    let gone = hub.create_project("Board Gone", "/srv/board-gone").await;
    payload(&hub.delete_project(&gone).await, "deleteProject");

    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    client.subscribe("board", PROJECTS_CHANGED, json!({})).await;
    let snapshot = [
        next_change(&mut client, "board").await,
        next_change(&mut client, "board").await,
        next_change(&mut client, "board").await,
    ];
    assert_eq!(
        snapshot.iter().map(change).collect::<Vec<_>>(),
        [
            ("SNAPSHOT".to_owned(), a.clone(), 1),
            ("SNAPSHOT".to_owned(), b.clone(), 1),
            ("SNAPSHOT_COMPLETE".to_owned(), String::new(), 0),
        ]
    );
    assert!(snapshot[2]["project"].is_null());
    assert!(
        snapshot
            .iter()
            .all(|m| m["cursor"] == snapshot[0]["cursor"]),
        "one cursor for the snapshot: {snapshot:?}"
    );

    let d = hub.create_project("Board D", "/srv/board-d").await;
    hub.rename_project(&a, "Board A2").await;
    hub.delete_project(&b).await;
    let live = [
        next_change(&mut client, "board").await,
        next_change(&mut client, "board").await,
        next_change(&mut client, "board").await,
    ];
    assert_eq!(
        live.iter().map(change).collect::<Vec<_>>(),
        [
            ("CREATED".to_owned(), d, 1),
            ("UPDATED".to_owned(), a, 2),
            ("DELETED".to_owned(), b, 2),
        ]
    );
    assert_eq!(live[1]["project"]["name"], "Board A2");
    assert_eq!(live[2]["project"]["deleted"], json!(true));
    let cursors: Vec<FeedPosition> = snapshot[..1].iter().chain(&live).map(cursor).collect();
    assert!(
        cursors.windows(2).all(|pair| pair[0] < pair[1]),
        "cursors increase: {cursors:?}"
    );
}

/// Every project event after `after`, as the `events` query lists them
/// (`(aggregate id, sequence)`), once the event log holds `count`.
async fn project_events_after(hub: &TestHub, after: &str, count: usize) -> Vec<(String, i64)> {
    let filter = json!({ "subject": format!("hub.{}.project.>", hub.hub_id()) });
    let what = format!("the event log to hold {count} project events after the cursor");
    wait_until(&what, ARRIVES, || async {
        let body = hub
            .graphql(
                ops::EVENTS,
                json!({ "filter": filter, "first": 1000, "after": after }),
            )
            .await;
        let edges = body["data"]["events"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("events failed: {body}"));
        (edges.len() == count).then(|| {
            edges
                .iter()
                .map(|edge| {
                    let node = &edge["node"];
                    (
                        node["aggregateId"].as_str().unwrap().to_owned(),
                        node["sequence"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
    })
    .await
}

#[tokio::test]
async fn the_board_resumes_after_its_last_cursor_with_every_change_once_under_concurrent_writers() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    hub.create_project("Board Early", "/srv/board-early").await;
    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    client.subscribe("board", PROJECTS_CHANGED, json!({})).await;
    assert_eq!(
        change(&next_change(&mut client, "board").await).0,
        "SNAPSHOT"
    );
    let complete = next_change(&mut client, "board").await;
    assert_eq!(change(&complete).0, "SNAPSHOT_COMPLETE");
    let snapshot_cursor = complete["cursor"].as_str().unwrap().to_owned();

    // Four writers, five projects each: created, started (request and
    // completion) and renamed, 80 events; the subscriber goes away after
    // 15 changes, in the middle of them.
    let writers = stream::iter(0..4).for_each_concurrent(4, |writer| {
        let hub = &hub;
        async move {
            for i in 0..5 {
                let id = hub
                    .create_project(&format!("W{writer} P{i}"), "/srv/board")
                    .await;
                payload(&hub.start_project(&id, None).await, "startProject");
                let renamed = format!("W{writer} P{i} renamed");
                payload(&hub.rename_project(&id, &renamed).await, "renameProject");
            }
        }
    });
    let listen = async {
        let mut before = Vec::new();
        while before.len() < 15 {
            before.push(next_change(&mut client, "board").await);
        }
        before
    };
    let ((), before) = tokio::join!(writers, listen);
    drop(client);

    let last_cursor = before.last().unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let all = project_events_after(&hub, &snapshot_cursor, 80).await;
    let rest = project_events_after(&hub, &last_cursor, 65).await;

    let mut client = WsClient::connect_and_init(&hub, Protocol::LegacyWs, json!({})).await;
    client
        .subscribe("board", PROJECTS_CHANGED, json!({ "after": last_cursor }))
        .await;
    let mut after = Vec::new();
    while after.len() < rest.len() {
        after.push(next_change(&mut client, "board").await);
    }
    let shown = |messages: &[Value]| -> Vec<(String, i64)> {
        messages
            .iter()
            .map(|m| {
                let (_, id, version) = change(m);
                (id, version)
            })
            .collect()
    };
    assert_eq!(shown(&after), rest, "exactly the changes after the cursor");
    let received = [before, after].concat();
    assert_eq!(
        shown(&received),
        all,
        "every change once, in the order recorded"
    );
    let mut per_project: HashMap<String, Vec<i64>> = HashMap::new();
    for (id, version) in shown(&received) {
        per_project.entry(id).or_default().push(version);
    }
    assert_eq!(per_project.len(), 20);
    assert!(
        per_project.values().all(|v| v == &[1, 2, 3, 4]),
        "{per_project:?}"
    );
    for message in &received {
        let (kind, _, version) = change(message);
        assert_eq!(kind, if version == 1 { "CREATED" } else { "UPDATED" });
    }
    assert_eq!(
        client.try_next(Duration::from_millis(300)).await,
        None,
        "nothing more"
    );
}

#[tokio::test]
async fn a_board_subscriber_that_falls_behind_the_live_feed_loses_nothing() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.ws.subscriber_buffer = 4;
    let hub = TestHub::start_with(config).await;
    let id = hub.create_project("Lagging", &long_path("lagging")).await;
    let fields: String = (0..200).map(|i| format!(" p{i}: path")).collect();
    let query =
        format!("subscription {{ projectsChanged {{ kind project {{ id version{fields} }} }} }}");
    let mut slow = WsClient::connect_with_receive_buffer(&hub, Protocol::TransportWs, 4096).await;
    slow.init(json!({})).await.expect("connection_ack");
    slow.subscribe("board", &query, json!({})).await;
    assert_eq!(change(&next_change(&mut slow, "board").await).0, "SNAPSHOT");
    assert_eq!(
        change(&next_change(&mut slow, "board").await).0,
        "SNAPSHOT_COMPLETE"
    );
    // Thirty changes while the client reads nothing: far more than the
    // four events its live buffer holds.
    for i in 0..30 {
        payload(
            &hub.rename_project(&id, &format!("Lagging {i}")).await,
            "renameProject",
        );
    }
    let mut versions = Vec::new();
    while versions.len() < 30 {
        let (kind, _, version) = change(&next_change(&mut slow, "board").await);
        assert_eq!(kind, "UPDATED");
        versions.push(version);
    }
    assert_eq!(versions, (2..=31).collect::<Vec<i64>>());
}

const TOKEN: &str = "s3cret-trusted-subscriptions";

#[tokio::test]
async fn with_a_token_both_protocols_serve_the_project_and_the_board_to_token_holders_only() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some(SecretString::from(TOKEN));
    let hub = TestHub::start_with(config).await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let (_, body) = hub
        .graphql_request(
            ops::CREATE,
            json!({ "name": "Guarded", "path": "/srv/guarded" }),
            &auth,
        )
        .await;
    let id = payload(&body, "createProject")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for (n, protocol) in BOTH.into_iter().enumerate() {
        let mut anonymous = WsClient::connect(&hub, protocol).await;
        assert!(
            anonymous.init(json!({})).await.is_err(),
            "{protocol:?} without the token"
        );

        let mut client =
            WsClient::connect_and_init(&hub, protocol, json!({ "authToken": TOKEN })).await;
        client
            .subscribe("p", PROJECT_CHANGED, json!({ "id": id }))
            .await;
        let first = next_project(&mut client, "p").await;
        assert_eq!(version(&first), 1 + n as i64);
        client.subscribe("board", PROJECTS_CHANGED, json!({})).await;
        assert_eq!(
            change(&next_change(&mut client, "board").await),
            ("SNAPSHOT".to_owned(), id.clone(), 1 + n as i64)
        );
        assert_eq!(
            change(&next_change(&mut client, "board").await).0,
            "SNAPSHOT_COMPLETE"
        );

        let (_, body) = hub
            .graphql_request(
                ops::RENAME,
                json!({ "id": id, "name": format!("Guarded {n}") }),
                &auth,
            )
            .await;
        let renamed = answered(&body, "renameProject");
        // Two subscriptions on one socket: their results interleave.
        let mut project = None;
        let mut board = None;
        while project.is_none() || board.is_none() {
            match client.next(ARRIVES).await {
                Incoming::Next { id: sub, payload } if sub == "p" => {
                    project = Some(payload["data"]["projectChanged"].clone());
                }
                Incoming::Next { id: sub, payload } if sub == "board" => {
                    board = Some(payload["data"]["projectsChanged"].clone());
                }
                other => panic!("expected results, got {other:?}"),
            }
        }
        assert_eq!(version(&project.unwrap()), renamed);
        assert_eq!(
            change(&board.unwrap()),
            ("UPDATED".to_owned(), id.clone(), renamed)
        );
    }
}
