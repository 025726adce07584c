//! The outbox relay publishes every committed event to JetStream, once:
//! the envelope, a burst of mutations, and a relay that died between
//! publishing and checkpointing.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use domain::{PortRange, ProjectCommand};
use futures::stream::{self, StreamExt};
use hub_tests::feed::{
    checkpoint_handled, command_bus, connect_options, create_project, migrated_pool, quick_config,
    run, stored_event_ids,
};
use hub_tests::hub::nats_url;
use hub_tests::jetstream::{
    assert_stream_holds, context, message_count, read_stream, DeleteStreamOnDrop,
};
use hub_tests::{wait_until, TestDb, TestHub};
use infrastructure::feed::{
    read_after, spawn_runner, AppendSignal, FeedConsumer as _, FeedPosition,
};
use infrastructure::nats::{NatsRelay, StreamSettings};
use serde_json::{json, Value};
use uuid::Uuid;

/// Long enough for the relay to catch up on a busy test server (any open
/// writing transaction on the server holds every feed reader back).
const CATCHES_UP: Duration = Duration::from_secs(20);

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
    for (mutation, done) in [
        ("startProject", "RUNNING"),
        ("stopProject", "STOPPED"),
        ("deleteProject", "DELETED"),
    ] {
        let body = hub
            .graphql(
                &format!(
                    "mutation($id: ID!) {{ {mutation}(id: $id) {{ project {{ version }} }} }}"
                ),
                json!({ "id": id }),
            )
            .await;
        assert!(body["errors"].is_null(), "{mutation} failed: {body}");
        hub.wait_for_status(&id, done).await;
    }
    let messages = stream_messages(&hub.stream_name(), 6).await;
    let subjects: Vec<&str> = messages.iter().map(|(s, _, _)| s.as_str()).collect();
    let prefix = format!("hub.{}.project", hub.hub_id());
    assert_eq!(
        subjects,
        vec![
            format!("{prefix}.created"),
            format!("{prefix}.start_requested"),
            format!("{prefix}.started"),
            format!("{prefix}.stop_requested"),
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

#[tokio::test]
async fn after_a_burst_of_fifty_mixed_mutations_the_stream_holds_each_stored_event_once_in_feed_order(
) {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    // Ten creations, then four changes to each project, four projects at a
    // time (more would only queue for database connections on a small
    // machine): fifty mutations, and the orchestrator's three completions
    // per project: eighty events.
    let ids: Vec<String> = stream::iter(0..10)
        .map(|i| {
            let hub = &hub;
            async move {
                hub.create_project(&format!("Burst {i}"), &format!("/srv/burst-{i}"))
                    .await
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    stream::iter(ids.iter().enumerate())
        .for_each_concurrent(4, |(i, id)| {
            let hub = &hub;
            async move {
                let renamed = format!("Burst {i} renamed");
                hub.start_and_wait(id).await;
                let body = hub.rename_project(id, &renamed).await;
                assert!(body["errors"].is_null(), "rename {id} failed: {body}");
                hub.stop_and_wait(id).await;
                hub.start_and_wait(id).await;
            }
        })
        .await;
    let pool = db.pool().await;
    let stored = stored_event_ids(&pool).await;
    assert_eq!(stored.len(), 80, "one event per mutation and completion");

    let js = context(&nats_url()).await;
    let stream = hub.stream_name();
    wait_until(
        "the stream to hold the store's 80 events",
        CATCHES_UP,
        || {
            let (js, stream) = (&js, &stream);
            async move { (message_count(js, stream).await == Some(80)).then_some(()) }
        },
    )
    .await;
    let messages = read_stream(&js, &stream).await;
    assert_stream_holds(&messages, &stored);
}

/// Publishes a message with `Nats-Msg-Id: id` on `subject`; returns whether
/// JetStream dropped it as a duplicate.
async fn publish_probe(js: &jetstream::Context, subject: &str, id: &str) -> bool {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    js.publish_with_headers(subject.to_owned(), headers, "probe".into())
        .await
        .expect("publish the probe")
        .await
        .expect("the probe is acknowledged")
        .duplicate
}

#[tokio::test]
async fn a_relay_killed_between_publishing_and_checkpointing_publishes_nothing_twice_even_after_the_duplicate_window(
) {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, PortRange::default());
    for i in 0..3 {
        let (id, created) = create_project(&bus, &format!("Crash {i}")).await;
        created.expect("create a project");
        run(&bus, id, ProjectCommand::StartProject)
            .await
            .expect("start it");
    }
    let hub_id = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let settings = StreamSettings::for_hub(
        &hub_id,
        StreamSettings::default_name(&hub_id),
        Duration::from_millis(500),
    );
    let _cleanup = DeleteStreamOnDrop {
        url: nats_url(),
        stream: settings.name.clone(),
    };
    let js = context(&nats_url()).await;
    let batch = wait_until("the first six events to be readable", CATCHES_UP, || {
        let pool = &pool;
        async move {
            let mut conn = pool.acquire().await.ok()?;
            let events = read_after(&mut conn, FeedPosition::START, 100).await.ok()?;
            (events.len() == 6).then_some(events)
        }
    })
    .await;

    // The crash: the batch is published, but the transaction in which the
    // runner would have moved the checkpoint never commits.
    let crashed = NatsRelay::new(js.clone(), settings.clone(), hub_id.clone());
    let mut tx = pool.begin().await.expect("begin the batch");
    crashed
        .handle(&mut tx, &batch)
        .await
        .expect("publish the batch");
    tx.rollback().await.expect("roll the batch back");
    drop(crashed);
    assert_eq!(checkpoint_handled(&pool, NatsRelay::NAME).await, 0);
    assert_eq!(message_count(&js, &settings.name).await, Some(6));

    // The condition under test is that the duplicate window has passed, so
    // JetStream no longer drops a republished event. It remembers ids at
    // least as long as ids published after them: once a probe published
    // after the batch is stored again instead of dropped, the batch's ids
    // are forgotten too. (This waits on that fact instead of sleeping.)
    let probe = format!("hub.{hub_id}.test.window_probe");
    let probe_id = Uuid::new_v4().to_string();
    assert!(!publish_probe(&js, &probe, &probe_id).await);
    wait_until(
        "JetStream to forget the published ids",
        Duration::from_secs(10),
        || {
            let (js, probe, probe_id) = (&js, &probe, &probe_id);
            async move { (!publish_probe(js, probe, probe_id).await).then_some(()) }
        },
    )
    .await;

    // More events while the relay is down, then a fresh relay from the
    // unmoved checkpoint.
    let (late, created) = create_project(&bus, "Crash late").await;
    created.expect("create a project");
    run(&bus, late, ProjectCommand::StartProject)
        .await
        .expect("start it");
    let relay = spawn_runner(
        Arc::new(NatsRelay::new(js.clone(), settings.clone(), hub_id)),
        connect_options(&db),
        quick_config(),
        &AppendSignal::default(),
    );
    wait_until(
        "the fresh relay to handle all eight events",
        CATCHES_UP,
        || {
            let pool = &pool;
            async move { (checkpoint_handled(pool, NatsRelay::NAME).await == 8).then_some(()) }
        },
    )
    .await;
    relay.stop();

    let messages = read_stream(&js, &settings.name).await;
    assert_stream_holds(&messages, &stored_event_ids(&pool).await);
    assert_eq!(messages.len(), 8 + 2, "the eight events and the two probes");
}

/// Whether a message that is not a hub event lies between two hub events
/// after the first one.
fn interleaved(messages: &[hub_tests::jetstream::Published]) -> bool {
    let hub: Vec<usize> = (0..messages.len())
        .filter(|&i| messages[i].event_id().is_some())
        .collect();
    hub.windows(2).skip(1).any(|pair| pair[1] > pair[0] + 1)
}

#[tokio::test]
async fn another_publisher_writing_into_the_stream_meanwhile_leaves_every_event_once_in_feed_order()
{
    const EVENTS: usize = 300;
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, PortRange::default());
    for i in 0..EVENTS {
        let (_, created) = create_project(&bus, &format!("Noisy {i}")).await;
        created.expect("create a project");
    }
    let hub_id = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let settings = StreamSettings::for_hub(
        &hub_id,
        StreamSettings::default_name(&hub_id),
        Duration::from_secs(120),
    );
    let _cleanup = DeleteStreamOnDrop {
        url: nats_url(),
        stream: settings.name.clone(),
    };
    let js = context(&nats_url()).await;
    let relay = NatsRelay::new(js.clone(), settings.clone(), hub_id.clone());
    let batch = wait_until("the events to be readable", CATCHES_UP, || {
        let pool = &pool;
        async move {
            let mut conn = pool.acquire().await.ok()?;
            let events = read_after(&mut conn, FeedPosition::START, 1000)
                .await
                .ok()?;
            (events.len() == EVENTS).then_some(events)
        }
    })
    .await;
    // The relay's first handle creates the stream.
    let mut tx = pool.begin().await.expect("begin");
    relay
        .handle(&mut tx, &batch[..1])
        .await
        .expect("publish the first event");
    tx.commit().await.expect("commit");

    // Another program publishes into the hub's subjects as fast as it is
    // acknowledged while the relay publishes one batch: its messages
    // land between the relay's, so the relay's chain breaks and restarts.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let (js, stop) = (context(&nats_url()).await, stop.clone());
        let subject = format!("hub.{hub_id}.external.noise");
        tokio::spawn(async move {
            let mut sent = 0_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut acks = Vec::new();
                for _ in 0..100 {
                    acks.push(
                        js.publish(subject.clone(), "noise".into())
                            .await
                            .expect("publish"),
                    );
                }
                for ack in acks {
                    ack.await.expect("the noise is acknowledged");
                    sent += 1;
                }
            }
            sent
        })
    };
    wait_until(
        "the other publisher to be writing",
        Duration::from_secs(10),
        || {
            let (js, stream) = (&js, &settings.name);
            async move { (message_count(js, stream).await > Some(20)).then_some(()) }
        },
    )
    .await;
    let mut tx = pool.begin().await.expect("begin the batch");
    relay
        .handle(&mut tx, &batch[1..])
        .await
        .expect("publish the batch");
    tx.commit().await.expect("commit the batch");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let noise_sent = noise.await.expect("the other publisher");

    let messages = read_stream(&js, &settings.name).await;
    assert_stream_holds(&messages, &stored_event_ids(&pool).await);
    assert_eq!(messages.len() as u64, EVENTS as u64 + noise_sent);
    assert!(
        interleaved(&messages),
        "the other publisher's messages never came between the relay's"
    );
}
