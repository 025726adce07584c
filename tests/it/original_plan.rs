//! The original event-system plan's own endpoint tests, as the plan writes
//! them: a hub with `HUB_ID=test` (on a NATS server of its own, so the id
//! is this file's alone), its subjects (`hub.test.example`, three tokens),
//! and query strings sent the way plain curl and Python's `websockets`
//! send them, with a raw `>`.

use std::time::Duration;

use futures::StreamExt as _;
use hub_tests::nats_server::NatsServer;
use hub_tests::raw::{self, RawAnswer};
use hub_tests::{wait_until, TestDb, TestHub};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A hub with the plan's id, and the private NATS server it uses.
struct PlanHub {
    hub: TestHub,
    nats: NatsServer,
    _db: TestDb,
}

impl PlanHub {
    async fn start() -> Self {
        let nats = NatsServer::start().await;
        let db = TestDb::create().await;
        let mut config = TestHub::config(db.url());
        config.hub_id = "test".to_owned();
        config.nats.nats_url = nats.url();
        let hub = TestHub::start_with(config).await;
        Self { hub, nats, _db: db }
    }

    fn addr(&self) -> String {
        self.hub.url().trim_start_matches("http://").to_owned()
    }

    /// `POST /api/events`; returns the status and the body.
    async fn publish(&self, body: Value) -> (u16, Value) {
        let response = self
            .hub
            .http()
            .post(format!("{}/api/events", self.hub.url()))
            .json(&body)
            .send()
            .await
            .expect("POST /api/events");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A GET with `target` written on the wire exactly as given.
    async fn raw_get(&self, target: &str) -> RawAnswer {
        let host = self.addr();
        raw::request(&host, "GET", target, &[("Host", &host)], "").await
    }
}

fn json_body(answer: &RawAnswer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|_| panic!("a JSON body: {answer:?}"))
}

#[tokio::test]
async fn publish_an_event() {
    let plan = PlanHub::start().await;
    let (status, body) = plan
        .publish(json!({"subject": "hub.test.example", "payload": {"message": "hello"}}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["event_id"].is_string(), "{body}");
    assert_eq!(body["subject"], "hub.test.example");
}

#[tokio::test]
async fn query_events_by_subject_with_a_raw_wildcard() {
    let plan = PlanHub::start().await;
    let (status, published) = plan
        .publish(json!({"subject": "hub.test.integration", "payload": {"n": 1}}))
        .await;
    assert_eq!(status, 201, "{published}");
    for target in [
        "/api/events?subject=hub.test.integration",
        "/api/events?subject=hub.test.>",
        "/api/events?subject=hub.>",
        "/api/events?subject=hub.*.integration",
    ] {
        let answer = plan.raw_get(target).await;
        assert_eq!(answer.status, 200, "{target}: {answer:?}");
        let events = json_body(&answer);
        let ids: Vec<&Value> = events
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| &e["id"])
            .collect();
        assert_eq!(ids, [&published["event_id"]], "{target}");
    }
}

#[tokio::test]
async fn raw_quotes_and_angle_brackets_reach_the_handler_as_text() {
    let plan = PlanHub::start().await;
    // They arrive as the characters sent: `"` and `<` are not allowed in a
    // subject pattern, and the answer says so (not an empty 400 from the
    // HTTP stack).
    let answer = plan.raw_get("/api/events?subject=hub.\"<x>\"").await;
    assert_eq!(answer.status, 422, "{answer:?}");
    let message = json_body(&answer)["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("subject"), "{message}");
    // A keep-alive connection: a POST body holding the characters passes
    // unchanged, and the next request's raw `>` is repaired too.
    let mut stream = TcpStream::connect(plan.addr()).await.expect("connect");
    let body = json!({"subject": "hub.test.raw", "payload": {"text": "a<b>\"c\"?d>"}}).to_string();
    let requests = format!(
        "POST /api/events?x=> HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}\
         GET /api/events?subject=hub.test.> HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        body.len(),
        host = plan.addr()
    );
    stream
        .write_all(requests.as_bytes())
        .await
        .expect("send both requests");
    let mut received = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut received),
    )
    .await
    .expect("both answers within 10 s")
    .expect("read");
    assert!(received.starts_with("HTTP/1.1 201"), "{received}");
    let second = &received[received.rfind("HTTP/1.1 ").expect("a second answer")..];
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(
        second.contains(r#""text":"a<b>\"c\"?d>""#),
        "the payload is stored as sent: {second}"
    );
}

#[tokio::test]
async fn get_an_event_by_id() {
    let plan = PlanHub::start().await;
    let (status, published) = plan
        .publish(json!({"subject": "hub.test.byid", "payload": {"k": "v"}}))
        .await;
    assert_eq!(status, 201, "{published}");
    let id = published["event_id"].as_str().expect("an id");
    let answer = plan.raw_get(&format!("/api/events/{id}")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let event = json_body(&answer);
    assert_eq!(event["id"], id);
    assert_eq!(event["subject"], "hub.test.byid");
    assert_eq!(event["payload"], json!({"k": "v"}));
}

#[tokio::test]
async fn health_and_nats_health() {
    let plan = PlanHub::start().await;
    // Healthy once its consumers have started and NATS is connected.
    let health = wait_until("the hub to be healthy", Duration::from_secs(10), || async {
        let health = plan.raw_get("/health").await;
        (health.status == 200 && json_body(&health)["status"] == "healthy").then_some(health)
    })
    .await;
    assert_eq!(health.header("content-type"), Some("application/json"));
    let nats = plan.raw_get("/health/nats").await;
    assert_eq!(nats.status, 200, "{nats:?}");
    assert_eq!(json_body(&nats)["connected"], true, "{nats:?}");
}

#[tokio::test]
async fn a_published_event_reaches_a_nats_subscriber() {
    let plan = PlanHub::start().await;
    let client = async_nats::connect(plan.nats.url())
        .await
        .expect("connect to NATS");
    let mut subscriber = client
        .subscribe("hub.test.>")
        .await
        .expect("subscribe to hub.test.>");
    client.flush().await.expect("flush the subscription");
    let (status, published) = plan
        .publish(json!({"subject": "hub.test.example", "payload": {"x": 1}}))
        .await;
    assert_eq!(status, 201, "{published}");
    let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
        .await
        .expect("the event within 10 s")
        .expect("a message");
    assert_eq!(message.subject.as_str(), "hub.test.example");
    let envelope: Value = serde_json::from_slice(&message.payload).expect("a JSON envelope");
    assert_eq!(envelope["id"], published["event_id"]);
    assert_eq!(envelope["payload"], json!({"x": 1}));
}

#[tokio::test]
async fn replay_events_since_a_time_in_order() {
    let plan = PlanHub::start().await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut ids = Vec::new();
    for n in 0..3 {
        let (status, published) = plan
            .publish(json!({"subject": "hub.test.replay", "payload": {"n": n}}))
            .await;
        assert_eq!(status, 201, "{published}");
        ids.push(published["event_id"].clone());
    }
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let answer = plan
        .raw_get(&format!("/api/events?subject=hub.test.>&since={since}"))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let events = json_body(&answer);
    let replayed: Vec<Value> = events
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(replayed, ids);
}

/// Opens `/api/events/stream?subject=hub.>` the way Python's `websockets`
/// does: the handshake's request target carries the raw `>`.
async fn raw_socket(plan: &PlanHub, target: &str) -> WebSocketStream<TcpStream> {
    let mut stream = TcpStream::connect(plan.addr()).await.expect("connect");
    let handshake = format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        plan.addr()
    );
    stream
        .write_all(handshake.as_bytes())
        .await
        .expect("send the handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0_u8; 1];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut byte))
            .await
            .expect("the handshake's answer within 10 s")
            .expect("read the handshake's answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    WebSocketStream::from_raw_socket(stream, Role::Client, None).await
}

#[tokio::test]
async fn the_socket_stream_takes_a_raw_wildcard() {
    let plan = PlanHub::start().await;
    let mut socket = raw_socket(&plan, "/api/events/stream?subject=hub.>").await;
    // The stream subscribes before it answers 101: the event is not missed.
    let (status, published) = plan
        .publish(json!({"subject": "hub.test.example", "payload": {"live": true}}))
        .await;
    assert_eq!(status, 201, "{published}");
    let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a frame within 10 s")
        .expect("the socket is open")
        .expect("a frame");
    let Message::Text(text) = frame else {
        panic!("a text frame, got {frame:?}");
    };
    let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
    assert_eq!(frame["subject"], "hub.test.example");
    assert_eq!(frame["data"]["id"], published["event_id"]);
    socket.close(None).await.expect("close the socket");
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error() {
    let plan = PlanHub::start().await;
    let cases = [
        (json!({"subject": "hub.test", "payload": {}}), "at least 3"),
        (json!({"subject": "hub.test.>", "payload": {}}), "wildcard"),
        (
            json!({"subject": "hub.other.example", "payload": {}}),
            "hub 'other'",
        ),
        (json!({"subject": "hub.test.example"}), "payload"),
        (
            json!({"subject": "hub.test.project", "payload": {}}),
            "reserved",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = plan.publish(body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let listed = plan.raw_get("/api/events").await;
    assert_eq!(json_body(&listed), json!([]), "nothing was recorded");
}
