//! Subscribers of the same operation share one run of it (`/metrics`
//! shows the runs and the shared streams), and each still gets exactly
//! what its own stream would send: its own current state or snapshot, then
//! every change once, in order; another selection set gets its own shape;
//! a member that leaves or falls behind disturbs no other.

use std::time::Duration;

use futures::stream::{self, StreamExt as _};
use hub_tests::ops::payload;
use hub_tests::ws::{Incoming, Protocol, WsClient};
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

/// Long enough for a change to travel store, relay, NATS and live feed to a
/// subscriber on a busy test server.
const ARRIVES: Duration = Duration::from_secs(15);

/// One document, written two ways: the same operation.
const NAMES: &str = "subscription($id: ID) { projectChanged(id: $id) { id name version } }";
const NAMES_AGAIN: &str = "subscription ( $id : ID )   {\n  projectChanged ( id : $id ) {\n    id, name # shown\n    version\n  }\n}";
/// Another selection set on the same field and arguments.
const STATES: &str = "subscription($id: ID) { projectChanged(id: $id) { version status } }";

async fn metrics(hub: &TestHub) -> String {
    hub.http()
        .get(format!("{}/metrics", hub.url()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics")
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// The data of the next result of `sub`.
async fn next_result(client: &mut WsClient, sub: &str) -> Value {
    match client.next(ARRIVES).await {
        Incoming::Next { id, payload } if id == sub => {
            assert!(payload["errors"].is_null(), "{sub} failed: {payload}");
            payload["data"].clone()
        }
        other => panic!("expected a result of {sub}, got {other:?}"),
    }
}

fn version(project: &Value) -> i64 {
    project["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("a version: {project}"))
}

/// The fields a result shows, sorted.
fn fields(project: &Value) -> Vec<String> {
    let mut keys: Vec<String> = project
        .as_object()
        .unwrap_or_else(|| panic!("an object: {project}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Reads `projectChanged` results of `sub` until version `until`; every
/// one must be the next version, starting at `from`.
async fn versions_from_to(client: &mut WsClient, sub: &str, from: i64, until: i64) -> Vec<Value> {
    let mut seen = Vec::new();
    for expected in from..=until {
        let project = next_result(client, sub).await["projectChanged"].clone();
        assert_eq!(version(&project), expected, "{sub}: after {seen:?}");
        seen.push(project);
    }
    seen
}

async fn rename(hub: &TestHub, id: &str, name: &str) -> i64 {
    version(payload(
        &hub.rename_project(id, name).await,
        "renameProject",
    ))
}

#[tokio::test]
async fn subscribers_of_one_operation_share_one_run_and_each_gets_every_change_in_order() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Shared", "/srv/shared").await;
    let vars = json!({ "id": id });
    // Three subscribers of one operation (two ways of writing it, both
    // protocols), and one of another selection set.
    let mut same = Vec::new();
    for (protocol, query) in [
        (Protocol::TransportWs, NAMES),
        (Protocol::LegacyWs, NAMES_AGAIN),
        (Protocol::TransportWs, NAMES),
    ] {
        let mut client = WsClient::connect_and_init(&hub, protocol, json!({})).await;
        client.subscribe("names", query, vars.clone()).await;
        let first = next_result(&mut client, "names").await["projectChanged"].clone();
        assert_eq!(version(&first), 1, "its own current state first");
        same.push(client);
    }
    let mut other = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    other.subscribe("states", STATES, vars.clone()).await;
    assert_eq!(
        next_result(&mut other, "states").await["projectChanged"],
        json!({ "version": 1, "status": "STOPPED" })
    );

    // Two operations: one run each once every subscriber of the first has
    // taken the shared stream over (at a change), where each of the four
    // had a run of its own at first.
    let text = metrics(&hub).await;
    assert_eq!(
        sample(&text, "hub_subscription_groups"),
        Some(2.0),
        "{text}"
    );
    let mut last = 1;
    let runs = loop {
        last += 1;
        rename(&hub, &id, &format!("Shared {last}")).await;
        let text = metrics(&hub).await;
        if sample(&text, "hub_subscription_runs") == Some(2.0) {
            break text;
        }
        assert!(
            last < 20,
            "the subscribers never came to share a run: {text}"
        );
    };
    assert_eq!(sample(&runs, "hub_subscriptions_open"), Some(4.0), "{runs}");
    for _ in 0..3 {
        last += 1;
        assert_eq!(rename(&hub, &id, &format!("Shared {last}")).await, last);
    }

    // Every version once, in order, each in the shape it asked for.
    for (n, client) in same.iter_mut().enumerate() {
        let seen = versions_from_to(client, "names", 2, last).await;
        for project in &seen {
            assert_eq!(fields(project), ["id", "name", "version"], "subscriber {n}");
            assert_eq!(
                project["name"],
                json!(format!("Shared {}", version(project)))
            );
        }
    }
    let seen = versions_from_to(&mut other, "states", 2, last).await;
    assert!(
        seen.iter().all(|p| fields(p) == ["status", "version"]),
        "{seen:?}"
    );
    for client in same.iter_mut().chain([&mut other]) {
        assert_eq!(
            client.try_next(Duration::from_millis(300)).await,
            None,
            "nothing more"
        );
    }
}

#[tokio::test]
async fn a_subscriber_joining_a_shared_stream_during_changes_gets_its_own_current_state_then_every_version(
) {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Joined", "/srv/joined").await;
    let vars = json!({ "id": id });
    let mut first = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    first.subscribe("p", NAMES, vars.clone()).await;
    assert_eq!(
        version(&next_result(&mut first, "p").await["projectChanged"]),
        1
    );

    // Newcomers join while the project changes: each starts at its own
    // current state and then misses nothing.
    let renames = stream::iter(2..=41).for_each(|n| {
        let hub = &hub;
        let id = &id;
        async move {
            assert_eq!(rename(hub, id, &format!("Joined {n}")).await, n);
        }
    });
    let join = async {
        let mut joined = Vec::new();
        for n in 0..8 {
            let protocol = [Protocol::TransportWs, Protocol::LegacyWs][n % 2];
            let mut client = WsClient::connect_and_init(&hub, protocol, json!({})).await;
            client.subscribe("p", NAMES, vars.clone()).await;
            joined.push(client);
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        joined
    };
    let ((), mut joined) = tokio::join!(renames, join);
    versions_from_to(&mut first, "p", 2, 41).await;
    for (n, client) in joined.iter_mut().enumerate() {
        let current = version(&next_result(client, "p").await["projectChanged"]);
        versions_from_to(client, "p", current + 1, 41).await;
        assert_eq!(
            client.try_next(Duration::from_millis(300)).await,
            None,
            "joiner {n}: nothing more"
        );
    }
    assert_eq!(version(&hub.project(&id).await), 41);
}

/// `projectsChanged` with every project's path repeated 200 times: a
/// change is hundreds of kB, so a client that stops reading holds the
/// server back at once.
fn fat_board() -> String {
    let fields: String = (0..200).map(|i| format!(" p{i}: path")).collect();
    format!("subscription {{ projectsChanged {{ kind project {{ id version{fields} }} }} }}")
}

/// The next `projectsChanged` of `sub`: its kind and version.
async fn next_change(client: &mut WsClient, sub: &str) -> (String, i64) {
    let change = next_result(client, sub).await["projectsChanged"].clone();
    (
        change["kind"].as_str().unwrap_or_default().to_owned(),
        change["project"]["version"].as_i64().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_member_that_leaves_or_falls_behind_disturbs_no_other_and_loses_nothing() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.ws.subscriber_buffer = 4;
    let hub = TestHub::start_with(config).await;
    let path = format!("/srv/{}/behind", "x".repeat(4000));
    let id = hub.create_project("Behind", &path).await;
    let board = fat_board();
    let mut slow = WsClient::connect_with_receive_buffer(&hub, Protocol::TransportWs, 4096).await;
    slow.init(json!({})).await.expect("connection_ack");
    slow.subscribe("board", &board, json!({})).await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
        client.subscribe("board", &board, json!({})).await;
        readers.push(client);
    }
    for client in [&mut slow].into_iter().chain(readers.iter_mut()) {
        assert_eq!(
            next_change(client, "board").await,
            ("SNAPSHOT".to_owned(), 1)
        );
        assert_eq!(next_change(client, "board").await.0, "SNAPSHOT_COMPLETE");
    }
    // Changes until all four have taken the shared stream over (one run).
    let mut last = 1;
    loop {
        last += 1;
        rename(&hub, &id, &format!("Behind {last}")).await;
        for client in [&mut slow].into_iter().chain(readers.iter_mut()) {
            assert_eq!(
                next_change(client, "board").await,
                ("UPDATED".to_owned(), last)
            );
        }
        if sample(&metrics(&hub).await, "hub_subscription_runs") == Some(1.0) {
            break;
        }
        assert!(last < 20, "the four never came to share one run");
    }
    let mut leaving = readers.pop();

    // Thirty changes while the slow one reads nothing, far more than the
    // four its shared buffer holds; one reader leaves among them.
    let (from, until) = (last + 1, last + 30);
    for n in from..=until {
        rename(&hub, &id, &format!("Behind {n}")).await;
        if n == from + 7 {
            drop(leaving.take());
        }
    }
    for client in &mut readers {
        for n in from..=until {
            assert_eq!(
                next_change(client, "board").await,
                ("UPDATED".to_owned(), n)
            );
        }
    }
    // Caught up from the store: every change, in order.
    let mut versions = Vec::new();
    while versions.len() < 30 {
        let (kind, version) = next_change(&mut slow, "board").await;
        assert_eq!(kind, "UPDATED");
        versions.push(version);
    }
    assert_eq!(versions, (from..=until).collect::<Vec<i64>>());
    let text = metrics(&hub).await;
    assert!(
        sample(&text, "hub_subscription_catch_ups_total").is_some_and(|n| n >= 1.0),
        "the slow one fell behind, so this test proves something: {text}"
    );
    for client in [&mut slow].into_iter().chain(readers.iter_mut()) {
        assert_eq!(
            client.try_next(Duration::from_millis(300)).await,
            None,
            "nothing more"
        );
    }
}

#[tokio::test]
async fn a_shared_events_subscriber_that_falls_behind_is_told_where_to_resume_and_the_others_go_on()
{
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.ws.subscriber_buffer = 4;
    let hub = TestHub::start_with(config).await;
    let fields: String = (0..200).map(|i| format!(" p{i}: payload")).collect();
    let query = format!("subscription {{ events {{ id cursor{fields} }} }}");
    let mut slow = WsClient::connect_with_receive_buffer(&hub, Protocol::TransportWs, 4096).await;
    slow.init(json!({})).await.expect("connection_ack");
    slow.subscribe("live", &query, json!({})).await;
    let mut reader = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    reader.subscribe("live", &query, json!({})).await;
    // Both live: a probe reaches both.
    let probe = |n: usize| {
        let hub = &hub;
        async move {
            hub.create_project(&format!("Probe {n}"), &format!("/srv/probe-{n}"))
                .await;
        }
    };
    let mut probes = 0;
    for client in [&mut slow, &mut reader] {
        client
            .wait_live("live", || {
                probes += 1;
                probe(probes)
            })
            .await;
    }
    // Earlier probes' results may follow.
    for client in [&mut slow, &mut reader] {
        while client.try_next(Duration::from_millis(500)).await.is_some() {}
    }
    // Both take the shared stream over at a change they both see: one
    // event each per probe.
    loop {
        probes += 1;
        probe(probes).await;
        for client in [&mut slow, &mut reader] {
            next_result(client, "live").await;
        }
        let text = metrics(&hub).await;
        if sample(&text, "hub_subscription_runs") == Some(1.0) {
            assert_eq!(
                sample(&text, "hub_subscription_groups"),
                Some(1.0),
                "{text}"
            );
            break;
        }
        assert!(probes < 40, "the two never came to share one run: {text}");
    }

    // Thirty events of about 800 kB as results, while the reader reads
    // them and the slow one reads nothing.
    let long = "x".repeat(4000);
    let creates = async {
        for n in 0..30 {
            hub.create_project(&format!("Slow {n}"), &format!("/srv/{long}/{n}"))
                .await;
        }
    };
    let reads = async {
        let mut seen = Vec::new();
        while seen.len() < 30 {
            let data = next_result(&mut reader, "live").await;
            seen.push(data["events"]["id"].as_str().expect("an id").to_owned());
        }
        seen
    };
    let ((), seen) = tokio::join!(creates, reads);
    // The slow one: results, then the error naming where to resume.
    let mut received = Vec::new();
    let message = loop {
        match slow.next(ARRIVES).await {
            Incoming::Next { id, payload } if id == "live" => {
                if let Some(message) = payload["errors"][0]["message"].as_str() {
                    assert_eq!(payload["errors"][0]["path"], json!(["events"]), "{payload}");
                    break message.to_owned();
                }
                received.push(
                    payload["data"]["events"]["id"]
                        .as_str()
                        .expect("an id")
                        .to_owned(),
                );
                assert!(
                    received.len() < 30,
                    "it never fell behind: this test proves nothing"
                );
            }
            other => panic!("expected results or the lag error, got {other:?}"),
        }
    };
    assert!(message.contains("resubscribe with after"), "{message}");
    assert_eq!(
        slow.next(ARRIVES).await,
        Incoming::Complete { id: "live".into() }
    );
    assert_eq!(received, seen[..received.len()], "no gap before the error");
    let cursor = message
        .split("after: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the message names a cursor: {message}"));
    slow.subscribe("rest", hub_tests::ws::EVENTS, json!({ "after": cursor }))
        .await;
    let mut rest = Vec::new();
    while received.len() + rest.len() < seen.len() {
        let data = next_result(&mut slow, "rest").await;
        rest.push(data["events"]["id"].as_str().expect("an id").to_owned());
    }
    assert_eq!([received, rest].concat(), seen, "resumed without a gap");
}

/// The versions of project `id` among the next `projectChanged` results of
/// `sub`, up to version `until`.
async fn versions_of(client: &mut WsClient, sub: &str, id: &str, until: i64) -> Vec<i64> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|last| *last < until) {
        let project = next_result(client, sub).await["projectChanged"].clone();
        if project["id"] == id {
            seen.push(version(&project));
        }
    }
    seen
}

#[tokio::test]
async fn newcomers_to_a_live_only_stream_miss_nothing_after_their_first_change() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let every = "subscription { projectChanged { id version } }";
    let mut first = Vec::new();
    let mut probes = 0;
    for protocol in [Protocol::TransportWs, Protocol::LegacyWs] {
        let mut client = WsClient::connect_and_init(&hub, protocol, json!({})).await;
        client.subscribe("all", every, json!({})).await;
        client
            .wait_live("all", || {
                probes += 1;
                let n = probes;
                let hub = &hub;
                async move {
                    hub.create_project(&format!("Probe {n}"), &format!("/srv/probe-{n}"))
                        .await;
                }
            })
            .await;
        first.push(client);
    }
    let id = hub.create_project("Live only", "/srv/live-only").await;
    // Newcomers join while the project changes; the stream is running.
    let renames = stream::iter(2..=31).for_each(|n| {
        let hub = &hub;
        let id = &id;
        async move {
            assert_eq!(rename(hub, id, &format!("Live only {n}")).await, n);
        }
    });
    let join = async {
        let mut joined = Vec::new();
        for n in 0..6 {
            let protocol = [Protocol::TransportWs, Protocol::LegacyWs][n % 2];
            let mut client = WsClient::connect_and_init(&hub, protocol, json!({})).await;
            client.subscribe("all", every, json!({})).await;
            joined.push(client);
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        joined
    };
    let ((), mut joined) = tokio::join!(renames, join);
    // One more change once every newcomer is subscribed: a newcomer that
    // joined after the last rename above has that one to see.
    assert_eq!(rename(&hub, &id, "Live only 32").await, 32);
    for client in &mut first {
        assert_eq!(
            versions_of(client, "all", &id, 32).await,
            (1..=32).collect::<Vec<_>>()
        );
    }
    for (n, client) in joined.iter_mut().enumerate() {
        let seen = versions_of(client, "all", &id, 32).await;
        let from = seen[0];
        assert_eq!(seen, (from..=32).collect::<Vec<_>>(), "newcomer {n}");
        assert_eq!(
            client.try_next(Duration::from_millis(300)).await,
            None,
            "newcomer {n}"
        );
    }
}
