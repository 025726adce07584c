//! Who may hold a `/graphql/ws` socket: the API token in `connection_init`,
//! the deadline for sending `connection_init` at all, and how large a
//! client message may be.

use std::time::Duration;

use hub_tests::ws::{Incoming, Protocol, WsClient, EVENTS};
use hub_tests::{TestDb, TestHub};
use secrecy::SecretString;
use serde_json::{json, Value};

const TOKEN: &str = "s3cret-subscriptions";

/// Reads until the socket ends; returns everything that came before the end
/// and the end itself.
///
/// # Panics
/// When the socket is still open after `deadline`.
async fn until_closed(client: &mut WsClient, deadline: Duration) -> Vec<Incoming> {
    let until = tokio::time::Instant::now() + deadline;
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let message = client
            .try_next(left)
            .await
            .unwrap_or_else(|| panic!("the socket is still open after {deadline:?}: {seen:?}"));
        let closed = matches!(message, Incoming::Closed(_));
        seen.push(message);
        if closed {
            return seen;
        }
    }
}

#[tokio::test]
async fn a_socket_without_the_api_token_in_connection_init_is_refused() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some(SecretString::from(TOKEN));
    let hub = TestHub::start_with(config).await;
    let refused: [(Protocol, Value); 4] = [
        (Protocol::TransportWs, json!({})),
        (
            Protocol::TransportWs,
            json!({ "Authorization": "Bearer wrong" }),
        ),
        (Protocol::LegacyWs, json!({})),
        (Protocol::LegacyWs, json!({ "token": "wrong" })),
    ];
    for (protocol, payload) in refused {
        let mut client = WsClient::connect(&hub, protocol).await;
        let answer = client.init(payload.clone()).await;
        let Err(first) = answer else {
            panic!("{protocol:?} with {payload} was acknowledged");
        };
        let mut seen = vec![first.clone()];
        if !matches!(first, Incoming::Closed(_)) {
            seen.extend(until_closed(&mut client, Duration::from_secs(5)).await);
        }
        assert!(
            !seen.contains(&Incoming::Ack),
            "{protocol:?} with {payload}: {seen:?}"
        );
        // The refusal says what is missing: as the close reason
        // (graphql-transport-ws) or as a connection_error (legacy).
        let says_why = seen.iter().any(|message| match message {
            Incoming::Closed(Some((_, reason))) => reason.contains("API token"),
            Incoming::ConnectionError(payload) => payload.to_string().contains("API token"),
            _ => false,
        });
        assert!(says_why, "{protocol:?} with {payload}: {seen:?}");
        // graphql-ws's code for a refused connection_init, which its
        // clients do not retry in a loop.
        assert!(
            matches!(seen.last(), Some(Incoming::Closed(Some((4403, _))))),
            "{protocol:?} with {payload}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn a_socket_with_the_api_token_in_connection_init_receives_events() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some(SecretString::from(TOKEN));
    let hub = TestHub::start_with(config).await;
    let bearer = format!("Bearer {TOKEN}");
    let (_, body) = hub
        .graphql_request(
            "mutation { createProject(input: {name: \"Guarded\", path: \"/srv/guarded\"}) { project { id } } }",
            json!({}),
            &[("Authorization", bearer.as_str())],
        )
        .await;
    let id = body["data"]["createProject"]["project"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createProject failed: {body}"))
        .to_owned();
    for (protocol, payload) in [
        (Protocol::TransportWs, json!({ "Authorization": bearer })),
        (
            Protocol::LegacyWs,
            json!({ "headers": { "Authorization": bearer } }),
        ),
    ] {
        let mut client = WsClient::connect_and_init(&hub, protocol, payload).await;
        client
            .subscribe("events", EVENTS, json!({ "after": "0" }))
            .await;
        let data = client.next_data("events", Duration::from_secs(15)).await;
        assert_eq!(data["events"]["aggregateId"], json!(id), "{protocol:?}");
    }
}

#[tokio::test]
async fn a_socket_that_never_sends_connection_init_is_closed_after_the_init_timeout() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.ws.ws_init_timeout_secs = 1;
    let hub = TestHub::start_with(config).await;
    for protocol in [Protocol::TransportWs, Protocol::LegacyWs] {
        let opened = tokio::time::Instant::now();
        let mut client = WsClient::connect(&hub, protocol).await;
        let seen = until_closed(&mut client, Duration::from_secs(5)).await;
        // graphql-ws's code; the legacy protocol says why in a message first.
        let said = match protocol {
            Protocol::TransportWs => 1,
            Protocol::LegacyWs => 2,
        };
        assert_eq!(seen.len(), said, "{protocol:?}: only the end: {seen:?}");
        assert!(
            matches!(seen.last(), Some(Incoming::Closed(Some((4408, _))))),
            "{protocol:?}: {seen:?}"
        );
        assert!(
            opened.elapsed() >= Duration::from_millis(900),
            "{protocol:?}: closed after {:?}, before the 1 s timeout",
            opened.elapsed()
        );
    }
}

#[tokio::test]
async fn a_message_many_read_buffers_long_is_read_whole_and_one_over_the_limit_closes_the_socket() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;

    // About 30 KiB (the server reads in 4 KiB chunks; the limit is 64 KiB):
    // a subscription padded with whitespace works like any other.
    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    let padding = " ".repeat(30 * 1024);
    let query = format!("subscription {{ projectChanged {{ id{padding} status }} }}");
    client.subscribe("padded", &query, json!({})).await;
    let seen = client.wait_live_creating_probes("padded", &hub).await;
    assert!(seen["projectChanged"]["id"].is_string(), "{seen}");

    // Over the limit: the server closes the socket (1009, message too big).
    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    let padding = " ".repeat(70 * 1024);
    let query = format!("subscription {{ projectChanged {{ id{padding} }} }}");
    client.subscribe("too-big", &query, json!({})).await;
    let received = until_closed(&mut client, Duration::from_secs(10)).await;
    match received.last() {
        Some(Incoming::Closed(Some((code, _)))) => assert_eq!(*code, 1009, "{received:?}"),
        // The server may drop the connection without a close frame.
        Some(Incoming::Closed(None)) => {}
        other => panic!("expected the socket closed, got {other:?} in {received:?}"),
    }
    assert!(
        !received.iter().any(|m| matches!(m, Incoming::Next { .. })),
        "nothing subscribed: {received:?}"
    );
}

#[tokio::test]
async fn sockets_may_take_three_quarters_of_the_connections_and_no_more() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.http.max_connections = 8;
    let hub = TestHub::start_with(config).await;
    // Six sockets, of both kinds, fill the share of eight connections.
    let mut graphql = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..3 {
        graphql.push(WsClient::connect(&hub, Protocol::TransportWs).await);
        streams.push(
            hub_tests::rest::open_stream(&hub, "", &[], None)
                .await
                .expect("an event socket"),
        );
    }
    let refused = WsClient::try_connect_url(&hub.url(), Protocol::TransportWs, &[])
        .await
        .err();
    assert_eq!(refused, Some(503), "a seventh socket is refused");
    let (status, body) = hub_tests::rest::open_stream(&hub, "", &[], None)
        .await
        .expect_err("a seventh event socket is refused");
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");
    // Requests still have their slots.
    let health = hub
        .http()
        .get(format!("{}/health", hub.url()))
        .send()
        .await
        .expect("/health answers");
    assert_eq!(health.status(), 200);
    let metrics = hub
        .http()
        .get(format!("{}/metrics", hub.url()))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("its text");
    assert!(
        metrics.lines().any(|l| l == "hub_websockets_open 6"),
        "{metrics}"
    );
    // A closed socket frees its place.
    drop(graphql.pop());
    hub_tests::wait_until(
        "a socket's place to be freed",
        Duration::from_secs(10),
        || async {
            WsClient::try_connect_url(&hub.url(), Protocol::TransportWs, &[])
                .await
                .ok()
        },
    )
    .await;
}

#[tokio::test]
async fn the_upgrade_answers_with_the_first_protocol_the_client_offers_and_speaks_it() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let addr = hub.url().trim_start_matches("http://").to_owned();
    for (offered, first) in [
        ("graphql-ws, graphql-transport-ws", Protocol::LegacyWs),
        ("graphql-transport-ws, graphql-ws", Protocol::TransportWs),
    ] {
        let mut request = format!("ws://{addr}/graphql/ws")
            .into_client_request()
            .expect("a request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            offered.parse().expect("a header value"),
        );
        let (_, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the upgrade");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(first.name()),
            "offered {offered}"
        );
        // And the socket speaks it.
        let mut client =
            WsClient::connect_url(&hub.url(), first, &[("Sec-WebSocket-Protocol", offered)]).await;
        assert_eq!(client.init(json!({})).await, Ok(()), "offered {offered}");
    }
}

#[tokio::test]
async fn stopping_the_hub_closes_its_sockets_with_going_away() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let mut clients = Vec::new();
    for protocol in [Protocol::TransportWs, Protocol::LegacyWs] {
        let mut client = WsClient::connect_and_init(&hub, protocol, json!({})).await;
        client.subscribe("events", EVENTS, json!({})).await;
        clients.push(client);
    }
    let mut event_socket = hub_tests::rest::open_stream(&hub, "subject=hub.%3E", &[], None)
        .await
        .expect("the event socket opens");
    // Every socket is open and live before the hub stops.
    hub.create_project("Going away", "/srv/going-away").await;
    for client in &mut clients {
        client.next_data("events", Duration::from_secs(10)).await;
    }
    assert!(matches!(
        hub_tests::rest::next_frame(&mut event_socket, Duration::from_secs(10)).await,
        Some(hub_tests::rest::Frame::Json(_))
    ));

    let stopping = tokio::spawn(hub.stop());
    for client in &mut clients {
        let end = until_closed(client, Duration::from_secs(5)).await;
        assert!(
            matches!(end.last(), Some(Incoming::Closed(Some((1001, _))))),
            "the socket is closed with 1001 (going away): {end:?}"
        );
    }
    loop {
        match hub_tests::rest::next_frame(&mut event_socket, Duration::from_secs(5)).await {
            Some(hub_tests::rest::Frame::Json(_)) => continue,
            end => {
                assert_eq!(end, Some(hub_tests::rest::Frame::Closed(Some(1001))));
                break;
            }
        }
    }
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the hub stops once its sockets are closed")
        .expect("the hub's task");
}
