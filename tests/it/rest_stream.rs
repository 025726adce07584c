//! `WS /api/events/stream`: live events as `{subject, data}` frames,
//! filtered by subject; refused upgrades for bad subjects and missing
//! tokens; a slow client told so before it is closed.

use std::time::Duration;

use hub_tests::rest::{self, next_frame, open_stream, subject, EventSocket, Frame};
use hub_tests::{TestDb, TestHub};
use secrecy::SecretString;
use serde_json::{json, Value};

const ARRIVES: Duration = Duration::from_secs(20);

/// The next event frame, skipping nothing.
async fn next_event(socket: &mut EventSocket) -> Value {
    match next_frame(socket, ARRIVES).await {
        Some(Frame::Json(frame)) => frame,
        other => panic!("expected an event frame, got {other:?}"),
    }
}

#[tokio::test]
async fn the_socket_streams_published_events_that_match_its_subject() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let pattern = subject(&hub, "audit.>");
    let mut socket = open_stream(
        &hub,
        &format!("subject={}", pattern.replace('>', "%3E")),
        &[],
        None,
    )
    .await
    .expect("the upgrade is accepted");

    rest::publish(&hub, &subject(&hub, "deploy.done"), json!({"skip": true})).await;
    hub.create_project("Not Audited", "/srv/not-audited").await;
    let published = rest::publish(
        &hub,
        &subject(&hub, "audit.security.completed"),
        json!({"status": "passed"}),
    )
    .await;

    let frame = next_event(&mut socket).await;
    assert_eq!(
        frame["subject"],
        json!(subject(&hub, "audit.security.completed"))
    );
    let envelope = &frame["data"];
    assert_eq!(envelope["id"], published["event_id"]);
    assert_eq!(envelope["subject"], frame["subject"]);
    assert_eq!(envelope["payload"], json!({"status": "passed"}));
    assert_eq!(envelope["correlation_id"], published["correlation_id"]);
    assert_eq!(envelope["aggregate_type"], "IntegrationEvent");
    assert_eq!(envelope["origin"]["hub_id"], json!(hub.hub_id()));
    assert_eq!(
        next_frame(&mut socket, Duration::from_millis(500)).await,
        None,
        "events on other subjects were not sent"
    );
}

#[tokio::test]
async fn without_a_subject_the_socket_streams_every_event_of_the_hub() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let mut socket = open_stream(&hub, "", &[], None).await.expect("upgrade");
    hub.create_project("Streamed", "/srv/streamed").await;
    let frame = next_event(&mut socket).await;
    assert_eq!(frame["subject"], json!(subject(&hub, "project.created")));
    assert_eq!(frame["data"]["event_type"], "ProjectCreated");
}

#[tokio::test]
async fn a_malformed_subject_refuses_the_upgrade_with_422() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    for query in [
        "subject=hub..x",
        "subject=hub.%3E.x",
        "subject=hub.a%20b",
        "subject=",
    ] {
        let (status, body) = open_stream(&hub, query, &[], None)
            .await
            .expect_err("the upgrade is refused");
        assert_eq!(status, 422, "{query}");
        assert_eq!(body["error"]["code"], "INVALID_INPUT", "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("subject: "),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn with_a_token_configured_the_socket_needs_it_in_the_header_or_the_query() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some(SecretString::from("stream-token"));
    let hub = TestHub::start_with(config).await;

    for (query, headers) in [
        ("subject=hub.%3E", &[][..]),
        ("token=wrong", &[][..]),
        ("", &[("authorization", "Bearer wrong")][..]),
    ] {
        let (status, body) = open_stream(&hub, query, headers, None)
            .await
            .expect_err("refused without the token");
        assert_eq!(status, 401, "{query} {headers:?}");
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    }
    let mut by_header = open_stream(&hub, "", &[("authorization", "Bearer stream-token")], None)
        .await
        .expect("the header token is accepted");
    let mut by_query = open_stream(&hub, "token=stream-token&subject=hub.%3E", &[], None)
        .await
        .expect("the query token is accepted");
    hub.graphql_request(
        "mutation { createProject(input: {name: \"Token\", path: \"/srv/token\"}) { project { id } } }",
        json!({}),
        &[("authorization", "Bearer stream-token")],
    )
    .await;
    assert_eq!(
        next_event(&mut by_header).await["data"]["event_type"],
        "ProjectCreated"
    );
    assert_eq!(
        next_event(&mut by_query).await["data"]["event_type"],
        "ProjectCreated"
    );
}

#[tokio::test]
async fn a_client_that_falls_behind_gets_an_error_frame_and_is_closed() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.ws.subscriber_buffer = 4;
    let hub = TestHub::start_with(config).await;
    let mut socket = open_stream(&hub, "", &[], Some(4096))
        .await
        .expect("upgrade");

    // About 8 MB of events that this client does not read while they are
    // published: more than socket buffers hold, so the server must wait
    // for it and its buffer of 4 overflows.
    let big = "x".repeat(200_000);
    let on = subject(&hub, "bulk.item");
    let total = 40;
    for i in 0..total {
        rest::publish(&hub, &on, json!({"i": i, "filler": big})).await;
    }

    let mut received = 0;
    let error = loop {
        match next_frame(&mut socket, ARRIVES).await {
            Some(Frame::Json(frame)) if frame.get("error").is_some() => {
                break frame["error"].clone()
            }
            Some(Frame::Json(frame)) => {
                assert_eq!(frame["subject"], json!(on));
                received += 1;
                assert!(received < total, "every event arrived: the client never fell behind, so this test proves nothing");
            }
            other => panic!("expected events and then the error frame, got {other:?}"),
        }
    };
    let error = error.as_str().expect("a message");
    assert!(
        error.contains("fell") && error.contains("behind"),
        "{error}"
    );
    assert!(error.contains("GET /api/events?since="), "{error}");
    assert_eq!(
        next_frame(&mut socket, ARRIVES).await,
        Some(Frame::Closed(Some(1013)))
    );
}
