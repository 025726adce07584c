//! What the hub accepts it can read back, and a stored row it cannot read
//! back is a parked event of that row, never an outage: every consumer
//! parks it and goes on, and an operator sees it and can skip it.
//!
//! The row is what a hub before this check stored for
//! `{"v": 1.7976931348623157e308}`: PostgreSQL keeps that number as a
//! 309-digit integer, which JSON parsers refuse as out of range.

use std::time::Duration;

use hub_tests::graphql::{data, data_as, view};
use hub_tests::jetstream::{context, health_at, read_stream};
use hub_tests::spawned::SpawnedHub;
use hub_tests::views::{Health, HealthStatus, RestEvent, SkipResult};
use hub_tests::ws::{Incoming, Protocol, WsClient};
use hub_tests::{wait_until, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// The consumers that read the feed.
const CONSUMERS: [&str; 4] = [
    "projects",
    "event_log",
    "nats_relay",
    "project_orchestrator",
];

const ARRIVES: Duration = Duration::from_secs(15);

/// Writes, as an older hub did, an integration event whose payload holds
/// a number PostgreSQL gives back as 309 digits; returns its id.
async fn store_unreadable_event(pool: &PgPool, hub_id: &str) -> Uuid {
    let huge = format!("17976931348623157{}", "0".repeat(292));
    let payload = format!(
        r#"{{"IntegrationEventPublished": {{"subject": "hub.{hub_id}.audit.huge", "payload": {{"v": {huge}}}}}}}"#
    );
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('IntegrationEvent', $1, 1, 'IntegrationEventPublished', '1.0', $2::json, '{}'::json) \
         RETURNING event_id",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(payload)
    .fetch_one(pool)
    .await
    .expect("store the unreadable row")
}

async fn publish(hub: &SpawnedHub, tail: &str, payload: Value) -> reqwest::Response {
    hub.http()
        .post(format!("{}/api/events", hub.url()))
        .json(&json!({ "subject": format!("hub.{}.{tail}", hub.hub_id()), "payload": payload }))
        .send()
        .await
        .expect("POST /api/events")
}

async fn health(hub: &SpawnedHub) -> Health {
    view(&health_at(hub.http(), &hub.url()).await)
}

#[tokio::test]
async fn a_number_the_store_cannot_give_back_is_refused_at_the_door() {
    let mut hub = SpawnedHub::start("door", &[]).await;
    let before = hub.db.event_count().await;
    let answer = publish(&hub, "audit.x", json!({ "v": f64::MAX })).await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = answer.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "INVALID_INPUT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot be stored exactly"),
        "{body}"
    );
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let answer = publish(&hub, "audit.deep", json!({ "v": deep })).await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(hub.db.event_count().await, before, "nothing was stored");

    // Numbers that do come back as they went in are fine, and read back alike.
    let fine = json!({ "small": 5e-324, "big": 1e300, "int": u64::MAX, "neg": -0.5 });
    let answer = publish(&hub, "audit.fine", fine.clone()).await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    let created: Value = answer.json().await.expect("the publish answer");
    let event: Value = hub
        .http()
        .get(format!(
            "{}/api/events/{}",
            hub.url(),
            created["event_id"].as_str().unwrap()
        ))
        .send()
        .await
        .expect("GET the event")
        .json()
        .await
        .expect("JSON");
    assert_eq!(view::<RestEvent>(&event).payload, fine);
    hub.assert_alive().await;
}

/// Waits until every consumer has parked the event and `/health` shows it.
async fn wait_until_parked_everywhere(hub: &SpawnedHub, count: i64) -> Health {
    wait_until(
        "every consumer to park the unreadable event",
        ARRIVES,
        || async {
            let health = health(hub).await;
            CONSUMERS
                .iter()
                .all(|name| health.consumer(name).parked == Some(count))
                .then_some(health)
        },
    )
    .await
}

#[tokio::test]
async fn an_unreadable_row_is_parked_by_every_consumer_and_everything_else_flows() {
    // The row is in the store before the hub starts, as after an upgrade.
    let db = TestDb::create().await;
    let pool = db.pool().await;
    let hub_id = hub_tests::spawned::hub_id("unreadable");
    {
        let hub = hub_tests::TestHub::start_with({
            let mut config = hub_tests::TestHub::config(db.url());
            config.hub_id = hub_id.clone();
            config
        })
        .await;
        hub.stop().await;
    }
    let old = store_unreadable_event(&pool, &hub_id).await;
    let spec = hub_tests::reliability::HubSpec::new(db.url(), &hub_tests::hub::nats_url(), &hub_id);
    let mut hub = SpawnedHub::start_spec(db, spec).await;

    let parked = wait_until_parked_everywhere(&hub, 1).await;
    assert_eq!(parked.status, HealthStatus::Degraded, "{parked:?}");
    for name in CONSUMERS {
        let consumer = parked.consumer(name);
        assert!(consumer.halted.is_none(), "{parked:?}");
        let first = consumer
            .first_parked
            .as_ref()
            .and_then(|events| events.first())
            .unwrap_or_else(|| panic!("{name} lists the parked event: {parked:?}"));
        assert_eq!(first.event_id, old.to_string(), "{parked:?}");
        assert!(
            first
                .error
                .as_deref()
                .is_some_and(|error| error.contains("number out of range")),
            "{parked:?}"
        );
    }

    // A live subscriber, then new events of every kind after the bad one.
    let mut subscriber = WsClient::connect_url(&hub.url(), Protocol::TransportWs, &[]).await;
    subscriber.init(json!({})).await.expect("connection_ack");
    subscriber
        .subscribe(
            "live",
            "subscription { events { id eventType } }",
            json!({}),
        )
        .await;
    hub.wait_live(&mut subscriber, "live").await;
    let new = store_unreadable_event(&pool, &hub_id).await;
    let project = hub.create_project("flows-on").await;
    let answer = publish(&hub, "audit.after", json!({ "ok": true })).await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    let published: Value = answer.json().await.expect("JSON");
    let after = published["event_id"]
        .as_str()
        .expect("an event id")
        .to_owned();

    // projects: the project's row; event_log: the event; a subscriber.
    let row = hub
        .graphql(
            "query($id: ID!) { project(id: $id) { name status } }",
            json!({ "id": project }),
        )
        .await;
    assert_eq!(
        data(&row.body, "project")["name"],
        "flows-on",
        "{}",
        row.body
    );
    let logged = hub
        .http()
        .get(format!("{}/api/events/{after}", hub.url()))
        .send()
        .await
        .expect("GET the event");
    assert_eq!(logged.status(), StatusCode::OK);
    // The subscriber gets the event published after both bad rows.
    loop {
        match subscriber.next(ARRIVES).await {
            Incoming::Next { payload, .. } => {
                let id = data(&payload, "events")["id"].as_str().unwrap_or("");
                assert_ne!(
                    id,
                    new.to_string(),
                    "an unreadable event is never delivered"
                );
                if id == after {
                    break;
                }
            }
            other => panic!("expected live events, got {other:?}"),
        }
    }
    // NATS: the new events, never the unreadable ones.
    let js = context(&hub.process.spec().nats_url).await;
    let stream = hub.process.spec().stream();
    let messages = wait_until("the relay to publish the new events", ARRIVES, || async {
        // The relay makes the stream once it has reached NATS.
        js.get_stream(&stream).await.ok()?;
        let messages = read_stream(&js, &stream).await;
        (messages.len() >= 2).then_some(messages)
    })
    .await;
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m.body["id"].as_str().map(str::to_owned))
        .collect();
    assert!(ids.contains(&after), "{ids:?}");
    assert!(!ids.contains(&old.to_string()) && !ids.contains(&new.to_string()));

    // Both bad rows are parked everywhere, and shown with their reason.
    wait_until_parked_everywhere(&hub, 2).await;
    let listed = std::process::Command::new(
        hub_tests::process::cargo_executable(&["-p", "api", "--bin", "hub"]).await,
    )
    .args(["projections", "list"])
    .env("DATABASE_URL", hub.db.url())
    .env("HUB_ID", &hub_id)
    .env("RUST_LOG", "warn")
    .output()
    .expect("run hub projections list");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    for name in CONSUMERS {
        let line = listed
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("{name} is listed:\n{listed}"));
        assert!(line.split_whitespace().any(|field| field == "2"), "{line}");
    }

    // An operator skips them, consumer by consumer, over the admin API.
    for name in CONSUMERS {
        for event in [old, new] {
            let answer = hub
                .graphql(
                    "mutation($name: String!, $id: ID!) { skipParkedEvent(name: $name, eventId: $id) { \
                       name heldBehind skipped { eventId aggregateId sequence eventType failed \
                       error heldBehind attempts } } }",
                    json!({ "name": name, "id": event.to_string() }),
                )
                .await;
            let skipped = data_as::<SkipResult>(&answer.body, "skipParkedEvent").skipped;
            assert!(skipped.failed, "{}", answer.body);
            assert!(
                skipped
                    .error
                    .as_deref()
                    .is_some_and(|error| error.contains("cannot be read back")),
                "{}",
                answer.body
            );
        }
    }
    let healthy = wait_until("the hub to be healthy again", ARRIVES, || async {
        let report = health(&hub).await;
        (report.status == HealthStatus::Healthy).then_some(report)
    })
    .await;
    assert_eq!(healthy.consumer("nats_relay").parked, Some(0));
    hub.assert_alive().await;
}

#[tokio::test]
async fn a_rebuild_parks_an_unreadable_row_for_the_read_model_it_switches_to() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    let hub = hub_tests::TestHub::start(db.url()).await;
    let hub_id = hub.hub_id().to_owned();
    hub.create_project("before", "/srv/before").await;
    let bad = store_unreadable_event(&pool, &hub_id).await;
    hub.create_project("after", "/srv/after").await;
    let target = projections::Rebuildable::by_name("event_log", &hub_id).expect("event_log");
    let outcome = projections::rebuild(
        &pool,
        &target,
        &projections::RebuildOptions::default(),
        |_| std::ops::ControlFlow::Continue(()),
    )
    .await
    .expect("the rebuild succeeds");
    assert!(matches!(outcome, projections::RebuildOutcome::Switched(_)));
    let parked = infrastructure::feed::parked_events(&pool, "event_log")
        .await
        .expect("read the parked events");
    let ids: Vec<Uuid> = parked.iter().map(|p| p.event_id).collect();
    assert_eq!(ids, [bad], "the rebuilt read model has the bad row parked");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
        .fetch_one(&pool)
        .await
        .expect("count the event log");
    assert_eq!(
        rows,
        db.event_count().await - 1,
        "every other event is logged"
    );
}

/// Numbers of every kind: random bit patterns (every magnitude, both
/// signs, subnormals), round decimals, the extremes and signed zeros.
fn numbers() -> Vec<f64> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut numbers = vec![
        0.0,
        -0.0,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
        1e308,
        1.5e-7,
        0.1,
    ];
    while numbers.len() < 4_000 {
        let bits = next();
        let random = f64::from_bits(bits);
        if random.is_finite() {
            numbers.push(random);
        }
        let exponent = i32::try_from(bits % 600).unwrap_or(0) - 300;
        let decimal = (bits >> 40) as f64 / 1000.0 * 10f64.powi(exponent);
        if decimal.is_finite() {
            numbers.push(if bits & 1 == 0 { decimal } else { -decimal });
        }
    }
    numbers
}

#[tokio::test]
async fn a_payload_is_accepted_exactly_when_the_store_gives_it_back_unchanged() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    let payloads: Vec<Value> = numbers().into_iter().map(|n| json!({ "v": n })).collect();
    let texts: Vec<String> = payloads.iter().map(Value::to_string).collect();
    // What a jsonb column (the event log) gives back for each.
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT t::jsonb::text FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i",
    )
    .bind(&texts)
    .fetch_all(&pool)
    .await
    .expect("store every payload");
    let mut refused = 0;
    for ((payload, text), stored) in payloads.iter().zip(&texts).zip(&stored) {
        let back = serde_json::from_str::<Value>(stored).ok();
        let unchanged = back.as_ref().is_some_and(|back| {
            let bits = |v: &Value| v["v"].as_f64().map(f64::to_bits);
            bits(back) == bits(payload)
        });
        let accepted = domain::EventPayload::parse(payload.clone()).is_ok();
        assert_eq!(
            accepted, unchanged,
            "{text} is stored as {stored}: accepted {accepted}, given back unchanged {unchanged}"
        );
        refused += usize::from(!accepted);
    }
    assert!(refused >= 2, "-0.0 and the extremes are refused");
}
