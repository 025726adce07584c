//! `POST /api/events`: integration events are stored as their own
//! aggregate, answered 201 with their ids, relayed on their own subject and
//! shown by every read path; bad requests are refused with a clear 4xx and
//! store nothing.

use std::time::Duration;

use hub_tests::graphql::{data_as, view};
use hub_tests::jetstream::{assert_once_and_in_aggregate_order, context, hub_events, read_stream};
use hub_tests::rest::{self, subject};
use hub_tests::views::{Connection, Event, RestEvent};
use hub_tests::{ops, wait_until, TestDb, TestHub};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

const ARRIVES: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_published_event_is_answered_201_with_its_ids_and_can_be_read_back_at_once() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let on = subject(&hub, "audit.security.completed");
    let answer = rest::post(
        &hub,
        &json!({
            "subject": on,
            "payload": {"status": "passed", "findings": 0},
            "correlation_id": "audit-run-7",
        }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let event_id = answer.body["event_id"].as_str().expect("an event_id");
    assert!(Uuid::parse_str(event_id).is_ok(), "{event_id}");
    assert_eq!(answer.body["correlation_id"], "audit-run-7");
    let timestamp = answer.body["timestamp"].as_str().expect("a timestamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "{timestamp}"
    );
    assert_eq!(
        answer.headers["location"].to_str().unwrap(),
        format!("/api/events/{event_id}")
    );

    // Read-your-writes: the publish answers once the event log has it.
    let read = rest::get(&hub, &format!("/api/events/{event_id}")).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    let read: RestEvent = view(&read.body);
    assert_eq!(read.id, event_id);
    assert_eq!(read.subject, on);
    assert_eq!(read.payload, json!({"status": "passed", "findings": 0}));
    assert_eq!(read.correlation_id.as_deref(), Some("audit-run-7"));
    assert_eq!(read.origin.hub_id, hub.hub_id());
    assert_eq!(read.aggregate_type, "IntegrationEvent");
    assert_eq!(read.sequence, 1);
    assert_eq!(
        read.timestamp,
        chrono::DateTime::parse_from_rfc3339(timestamp).unwrap()
    );

    let pool = db.pool().await;
    let (aggregate_type, sequence): (String, i64) =
        sqlx::query_as("SELECT aggregate_type, sequence FROM events WHERE event_id = $1")
            .bind(Uuid::parse_str(event_id).unwrap())
            .fetch_one(&pool)
            .await
            .expect("the stored row");
    assert_eq!((aggregate_type.as_str(), sequence), ("IntegrationEvent", 1));
}

#[tokio::test]
async fn the_correlation_id_comes_from_the_body_else_the_header_else_is_new() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let on = subject(&hub, "ci.build.finished");
    let body = json!({ "subject": on, "payload": {} }).to_string();

    let from_header = rest::post_raw(&hub, body.clone(), &[("x-correlation-id", "req-42")]).await;
    assert_eq!(from_header.status, StatusCode::CREATED);
    assert_eq!(from_header.body["correlation_id"], "req-42");

    let with_both = json!({ "subject": on, "payload": {}, "correlation_id": "body-1" }).to_string();
    let from_body = rest::post_raw(&hub, with_both, &[("x-correlation-id", "req-43")]).await;
    assert_eq!(from_body.body["correlation_id"], "body-1");

    let fresh = rest::post_raw(&hub, body, &[]).await;
    let id = fresh.body["correlation_id"]
        .as_str()
        .expect("a correlation id");
    assert!(Uuid::parse_str(id).is_ok(), "a new id is a UUID: {id}");

    let logged = rest::list(&hub, &[("correlation_id", "body-1")]).await;
    assert_eq!(logged.body.as_array().map(Vec::len), Some(1), "{logged:?}");
}

#[tokio::test]
async fn bad_publish_requests_get_a_clear_4xx_and_store_nothing() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.http.max_body_bytes = 4096;
    let hub = TestHub::start_with(config).await;
    let ok = subject(&hub, "audit.done");
    let long = subject(&hub, &format!("audit.{}", "x".repeat(250)));
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (
            json!({"subject": "hub.other-hub.audit.done", "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "belongs to hub 'other-hub'",
        ),
        (
            json!({"subject": subject(&hub, "audit.*"), "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "wildcard",
        ),
        (
            json!({"subject": subject(&hub, "audit.>"), "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "wildcard",
        ),
        (
            json!({"subject": subject(&hub, "audit..done"), "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "empty token",
        ),
        (
            json!({"subject": format!("hub.{}", hub.hub_id()), "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "at least 3",
        ),
        (
            json!({"subject": "audit.done.now.x", "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "must start with 'hub.",
        ),
        (
            json!({"subject": subject(&hub, "audit. done"), "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "whitespace",
        ),
        (
            json!({"subject": long, "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "at most 255 bytes",
        ),
        (
            json!({"subject": subject(&hub, "project.created"), "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "reserved",
        ),
        (
            json!({"subject": "", "payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "empty",
        ),
        (
            json!({"subject": ok, "payload": [1, 2]}).to_string(),
            422,
            "INVALID_INPUT",
            "JSON object",
        ),
        (
            json!({"subject": ok, "payload": "text"}).to_string(),
            422,
            "INVALID_INPUT",
            "JSON object",
        ),
        (
            json!({"subject": ok, "payload": null}).to_string(),
            422,
            "INVALID_INPUT",
            "JSON object",
        ),
        (
            json!({"subject": ok, "payload": {"note": "a\u{0}b"}}).to_string(),
            422,
            "INVALID_INPUT",
            "NUL character",
        ),
        (
            json!({"subject": ok}).to_string(),
            422,
            "INVALID_INPUT",
            "missing field `payload`",
        ),
        (
            json!({"payload": {}}).to_string(),
            422,
            "INVALID_INPUT",
            "missing field `subject`",
        ),
        (
            json!({"subject": ok, "payload": {}, "correlation_id": "no spaces"}).to_string(),
            422,
            "INVALID_INPUT",
            "correlation_id",
        ),
        ("[]".to_owned(), 422, "INVALID_INPUT", "the body must be"),
        (
            "{\"subject\": ".to_owned(),
            400,
            "MALFORMED_JSON",
            "not valid JSON",
        ),
        (
            "not json".to_owned(),
            400,
            "MALFORMED_JSON",
            "not valid JSON",
        ),
        (String::new(), 400, "MALFORMED_JSON", "not valid JSON"),
        (
            json!({"subject": ok, "payload": {"big": "x".repeat(5000)}}).to_string(),
            413,
            "PAYLOAD_TOO_LARGE",
            "limit of 4096 bytes",
        ),
    ];
    for (body, status, code, message) in cases {
        let answer = rest::post_raw(&hub, body.clone(), &[]).await;
        let shown: String = body.chars().take(80).collect();
        assert_eq!(answer.status.as_u16(), status, "{shown}: {answer:?}");
        assert_eq!(answer.error_code(), code, "{shown}: {answer:?}");
        assert!(
            answer.error_message().contains(message),
            "{shown}: expected '{message}' in {:?}",
            answer.error_message()
        );
    }
    assert_eq!(db.event_count().await, 0, "nothing was stored");
}

#[tokio::test]
async fn publishing_needs_the_token_even_when_reads_are_public() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some(SecretString::from("rest-token-1"));
    config.access.public_reads = true;
    let hub = TestHub::start_with(config).await;
    let body = json!({ "subject": subject(&hub, "audit.done"), "payload": {} }).to_string();

    for headers in [
        &[][..],
        &[("authorization", "Bearer wrong")][..],
        &[("authorization", "rest-token-1")][..],
    ] {
        let refused = rest::post_raw(&hub, body.clone(), headers).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{headers:?}: {refused:?}"
        );
        assert_eq!(refused.error_code(), "UNAUTHENTICATED");
        assert_eq!(refused.headers["www-authenticate"], "Bearer");
    }
    assert_eq!(db.event_count().await, 0);

    let accepted = rest::post_raw(&hub, body, &[("authorization", "Bearer rest-token-1")]).await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{accepted:?}");
    let listed = rest::list(&hub, &[]).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed: Vec<RestEvent> = view(&listed.body);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].origin.user, "token");
}

#[tokio::test]
async fn integration_events_show_in_graphql_and_reach_nats_once_on_their_own_subject() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    hub.create_project("Neighbour", "/srv/neighbour").await;
    let on = subject(&hub, "audit.security.completed");
    let published = rest::publish(
        &hub,
        &on,
        json!({"status": "passed", "nested": {"a": [1, 2]}}),
    )
    .await;
    let event_id = published["event_id"].as_str().unwrap().to_owned();

    let body = hub
        .graphql(
            ops::EVENTS,
            json!({ "filter": { "subject": subject(&hub, "audit.>") } }),
        )
        .await;
    let page: Connection<Event> = data_as(&body, "events");
    let [node] = page.nodes().collect::<Vec<_>>()[..] else {
        panic!("one event: {body}");
    };
    assert_eq!(node.id, event_id);
    assert_eq!(node.subject, on);
    assert_eq!(node.aggregate_type, "IntegrationEvent");
    assert_eq!(node.event_type, "IntegrationEventPublished");
    assert_eq!(
        node.payload,
        json!({"status": "passed", "nested": {"a": [1, 2]}})
    );

    let js = context(&hub_tests::hub::nats_url()).await;
    let stream = hub.stream_name();
    let messages = wait_until("the integration event in the stream", ARRIVES, || {
        let js = js.clone();
        let stream = stream.clone();
        let event_id = event_id.clone();
        async move {
            // The relay makes the stream once it has reached NATS.
            js.get_stream(&stream).await.ok()?;
            let messages = read_stream(&js, &stream).await;
            messages
                .iter()
                .any(|m| m.msg_id.as_deref() == Some(event_id.as_str()))
                .then_some(messages)
        }
    })
    .await;
    assert_once_and_in_aggregate_order(&messages);
    let ours: Vec<_> = hub_events(&messages)
        .into_iter()
        .filter(|m| m.msg_id.as_deref() == Some(event_id.as_str()))
        .collect();
    assert_eq!(ours.len(), 1, "exactly one copy in the stream");
    assert_eq!(ours[0].subject, on, "published on its own subject");
    assert_eq!(
        ours[0].body["payload"],
        json!({"status": "passed", "nested": {"a": [1, 2]}})
    );
    assert_eq!(ours[0].body["subject"], json!(on));
    assert_eq!(ours[0].body["aggregate_type"], "IntegrationEvent");
    let project_events = hub_events(&messages)
        .into_iter()
        .filter(|m| m.subject.ends_with(".project.created"))
        .count();
    assert_eq!(project_events, 1, "the project's own event is relayed too");
}

#[tokio::test]
async fn two_publishes_are_two_aggregates_each_at_sequence_one() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let on = subject(&hub, "audit.done");
    let first = rest::publish(&hub, &on, json!({"n": 1})).await;
    let second = rest::publish(&hub, &on, json!({"n": 2})).await;
    assert_ne!(first["event_id"], second["event_id"]);
    let listed = rest::list(&hub, &[("subject", on.as_str())]).await;
    let events: Vec<RestEvent> = view(&listed.body);
    assert_eq!(events.len(), 2);
    assert_ne!(events[0].aggregate_id, events[1].aggregate_id);
    assert!(events.iter().all(|e| e.sequence == 1));
    assert_eq!(
        events.iter().map(|e| &e.payload["n"]).collect::<Vec<_>>(),
        [&json!(1), &json!(2)],
        "oldest first"
    );
}

#[tokio::test]
async fn an_event_too_large_for_nats_is_refused_even_under_the_body_limit() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.http.max_body_bytes = 4 * 1024 * 1024;
    let hub = TestHub::start_with(config).await;
    // The NATS server's default largest message is 1 MiB.
    let big = "x".repeat(1024 * 1024);
    let answer = rest::post(
        &hub,
        &json!({ "subject": subject(&hub, "bulk.item"), "payload": {"filler": big} }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}");
    assert_eq!(answer.error_code(), "PAYLOAD_TOO_LARGE");
    assert_eq!(db.event_count().await, 0);
    rest::publish(
        &hub,
        &subject(&hub, "bulk.item"),
        json!({"filler": "x".repeat(900_000)}),
    )
    .await;
}
