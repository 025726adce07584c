//! `GET /api/events/stream` as Server-Sent Events, read with a real SSE
//! client (`eventsource-stream`'s parser over hyper's client): the wire
//! format, resuming with `Last-Event-ID` and `after` while a writer
//! publishes, `since`, keepalives, filters, the token and origin rules,
//! socket places, a slow client that makes the live broadcast lag, a
//! quiet stream that outlives the server's timeouts, and the WebSocket on
//! the same path.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, Eventsource as _};
use futures::{Stream, StreamExt as _};
use http_body_util::{BodyDataStream, BodyExt as _, Empty};
use hub_tests::rest::{self, next_frame, open_stream, subject, Frame};
use hub_tests::{feed, wait_until, TestDb, TestHub};
use hyper::body::Incoming;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use infrastructure::feed::FeedPosition;
use projections::ReadModels;
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

const ARRIVES: Duration = Duration::from_secs(20);

/// The connection's task, ended (and the connection closed) when dropped.
struct Connection(JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An answer to a stream request, its body not read yet.
struct Opened {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Incoming,
    connection: Connection,
}

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// An open SSE stream.
struct SseClient {
    events: Events,
    _connection: Connection,
}

impl Opened {
    /// The body as JSON (for refusals).
    async fn json(self) -> Value {
        assert!(
            self.headers.get("content-type").map(|v| v.as_bytes()) != Some(b"text/event-stream"),
            "expected a refusal, got a stream ({})",
            self.status
        );
        let bytes = tokio::time::timeout(ARRIVES, self.body.collect())
            .await
            .expect("the whole body within the deadline")
            .expect("read the body")
            .to_bytes();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    /// The body as SSE events.
    fn events(self) -> SseClient {
        assert_eq!(self.status, StatusCode::OK, "the stream was not opened");
        let events = BodyDataStream::new(self.body)
            .eventsource()
            .map(|event| event.expect("a well-formed SSE event"));
        SseClient {
            events: Box::pin(events),
            _connection: self.connection,
        }
    }

    /// The body as text chunks, as they arrive.
    fn chunks(self) -> (Pin<Box<dyn Stream<Item = String> + Send>>, Connection) {
        let chunks = BodyDataStream::new(self.body)
            .map(|chunk| String::from_utf8_lossy(&chunk.expect("a body chunk")).into_owned());
        (Box::pin(chunks), self.connection)
    }
}

impl SseClient {
    /// The next event, or `None` when none came within `timeout`.
    async fn next_within(&mut self, timeout: Duration) -> Option<Event> {
        tokio::time::timeout(timeout, self.events.next())
            .await
            .ok()
            .map(|event| event.expect("the stream is still open"))
    }

    /// The next event.
    async fn next(&mut self) -> Event {
        self.next_within(ARRIVES)
            .await
            .expect("an event within the deadline")
    }

    /// The next `n` events.
    async fn take(&mut self, n: usize) -> Vec<Event> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.next().await);
        }
        events
    }
}

fn addr(hub: &TestHub) -> SocketAddr {
    hub.url()
        .trim_start_matches("http://")
        .parse()
        .expect("the hub's URL is http://<ip>:<port>")
}

/// `GET /api/events/stream?<query>` with `headers`, over a connection of
/// its own, optionally with a small TCP receive buffer.
async fn get(
    hub: &TestHub,
    query: &str,
    headers: &[(&str, &str)],
    receive_buffer: Option<u32>,
) -> Opened {
    let addr = addr(hub);
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    if let Some(bytes) = receive_buffer {
        socket
            .set_recv_buffer_size(bytes)
            .expect("set the receive buffer size");
    }
    let stream = socket.connect(addr).await.expect("connect to the hub");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/1.1 connection");
    let connection = Connection(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut request =
        hyper::Request::get(format!("/api/events/stream?{query}")).header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new()).expect("a request"))
        .await
        .expect("an answer");
    let (parts, body) = response.into_parts();
    Opened {
        status: parts.status,
        headers: parts.headers,
        body,
        connection,
    }
}

/// Opens an SSE stream and expects it to be served.
async fn open(hub: &TestHub, query: &str, headers: &[(&str, &str)]) -> SseClient {
    let mut with_accept = vec![("accept", "text/event-stream")];
    with_accept.extend_from_slice(headers);
    get(hub, query, &with_accept, None).await.events()
}

/// An SSE request that is expected to be refused: its status and body.
async fn refused(hub: &TestHub, query: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut with_accept = vec![("accept", "text/event-stream")];
    with_accept.extend_from_slice(headers);
    let opened = get(hub, query, &with_accept, None).await;
    let status = opened.status;
    (status, opened.json().await)
}

/// The envelope an event carries.
fn envelope(event: &Event) -> Value {
    serde_json::from_str(&event.data).expect("the data is JSON")
}

/// `subject=<pattern>`, encoded.
fn subject_query(pattern: &str) -> String {
    format!(
        "subject={}",
        pattern.replace('>', "%3E").replace('*', "%2A")
    )
}

/// Publishes on `hub.<id>.audit.<name>`; returns the event id.
async fn publish(hub: &TestHub, name: &str, payload: Value) -> String {
    let body = rest::publish(hub, &subject(hub, &format!("audit.{name}")), payload).await;
    body["event_id"].as_str().expect("an event id").to_owned()
}

#[tokio::test]
async fn each_event_carries_its_position_its_type_and_the_sockets_envelope() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let opened = get(&hub, "", &[("accept", "text/event-stream")], None).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert_eq!(opened.headers["content-type"], "text/event-stream");
    assert_eq!(opened.headers["cache-control"], "no-cache");
    assert_eq!(opened.headers["x-accel-buffering"], "no");
    let mut sse = opened.events();
    let mut socket = open_stream(&hub, "", &[], None)
        .await
        .expect("the WebSocket upgrade is accepted");

    let id = publish(&hub, "security.completed", json!({"status": "passed"})).await;

    let event = sse.next().await;
    let data = envelope(&event);
    assert_eq!(data["id"], json!(id));
    assert_eq!(event.id, data["position"].to_string());
    assert_eq!(event.event, "IntegrationEventPublished");
    assert_eq!(data["payload"], json!({"status": "passed"}));
    let Some(Frame::Json(frame)) = next_frame(&mut socket, ARRIVES).await else {
        panic!("the socket sent no event");
    };
    assert_eq!(data, frame["data"], "SSE data is the socket's envelope");
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_gets_every_event_once_in_order_while_a_writer_publishes(
) {
    let db = TestDb::create().await;
    let hub = std::sync::Arc::new(TestHub::start(db.url()).await);
    let total = 60;
    let writer = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..total {
                ids.push(publish(&hub, "burst.item", json!({"i": i})).await);
            }
            ids
        })
    };

    // The first stream replays from the start; each next one resumes after
    // the last event seen, with a stale `after` that Last-Event-ID must win
    // over (were `after` used, events would come twice).
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut connections = 0;
    while seen.len() < total {
        let mut sse = match seen.last() {
            None => open(&hub, "after=0", &[]).await,
            Some((_, last_id)) => {
                open(
                    &hub,
                    &format!("after={}", seen[0].1),
                    &[("last-event-id", last_id)],
                )
                .await
            }
        };
        connections += 1;
        for _ in 0..7 {
            if seen.len() == total {
                break;
            }
            let event = sse.next().await;
            seen.push((
                envelope(&event)["id"].as_str().expect("an id").to_owned(),
                event.id,
            ));
        }
        // Dropped mid-stream: the connection closes here.
    }
    let published = writer.await.expect("the writer");
    let received: Vec<String> = seen.into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        received, published,
        "every event exactly once, in order, over {connections} connections"
    );
    assert!(connections >= 8);
}

#[tokio::test]
async fn after_resumes_right_after_the_event_and_refuses_unknown_or_malformed_ids() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let mut published = Vec::new();
    for i in 0..4 {
        published.push(publish(&hub, "step.done", json!({"i": i})).await);
    }
    let mut from_start = open(&hub, "after=0", &[]).await;
    let mut ids = Vec::new();
    for expected in &published {
        let event = from_start.next().await;
        assert_eq!(envelope(&event)["id"], json!(expected));
        ids.push(event.id);
    }

    let mut resumed = open(&hub, &format!("after={}", ids[1]), &[]).await;
    assert_eq!(envelope(&resumed.next().await)["id"], json!(published[2]));
    assert_eq!(envelope(&resumed.next().await)["id"], json!(published[3]));
    let live = publish(&hub, "step.done", json!({"i": 4})).await;
    assert_eq!(envelope(&resumed.next().await)["id"], json!(live));

    let unknown = ids[3].parse::<i64>().expect("a numeric id") + 1000;
    for (query, headers) in [
        (format!("after={unknown}"), vec![]),
        (String::new(), vec![("last-event-id", unknown.to_string())]),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, body) = refused(&hub, &query, &headers).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{query} {headers:?}");
        assert_eq!(body["error"]["code"], "NOT_FOUND");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&unknown.to_string()),
            "{body}"
        );
    }
    for (query, headers) in [
        ("after=abc", &[][..]),
        ("after=-1", &[][..]),
        ("after=1.5", &[][..]),
        ("after=1", &[("last-event-id", "nope")][..]),
    ] {
        let (status, body) = refused(&hub, query, headers).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query} {headers:?}"
        );
        assert_eq!(body["error"]["code"], "INVALID_INPUT", "{body}");
    }
}

#[tokio::test]
async fn since_replays_the_events_recorded_from_then_and_goes_live() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    for i in 0..3 {
        publish(&hub, "before.done", json!({"i": i})).await;
    }
    let first_after = publish(&hub, "after.done", json!({"i": 3})).await;
    let second_after = publish(&hub, "after.done", json!({"i": 4})).await;
    let logged = rest::get(&hub, &format!("/api/events/{first_after}")).await;
    let since = logged.body["timestamp"].as_str().expect("a timestamp");
    let at = |value: &Value| {
        chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp"))
            .expect("an RFC 3339 timestamp")
    };
    let logged = rest::list(&hub, &[]).await;
    let logged = logged.body.as_array().expect("a list");
    assert!(
        logged[..3]
            .iter()
            .all(|event| at(&event["timestamp"]) < at(&json!(since))),
        "the earlier events were recorded before {since}"
    );

    let mut sse = open(&hub, &format!("since={}", since.replace('+', "%2B")), &[]).await;
    assert_eq!(envelope(&sse.next().await)["id"], json!(first_after));
    assert_eq!(envelope(&sse.next().await)["id"], json!(second_after));
    let live = publish(&hub, "after.done", json!({"i": 5})).await;
    assert_eq!(envelope(&sse.next().await)["id"], json!(live));

    let (status, body) = refused(&hub, "since=soon", &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("since"),
        "{body}"
    );
}

#[tokio::test]
async fn a_quiet_stream_gets_a_keepalive_comment_every_interval() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.ws.sse_keepalive_secs = 1;
    let hub = TestHub::start_with(config).await;
    let opened = get(&hub, "", &[("accept", "text/event-stream")], None).await;
    assert_eq!(opened.status, StatusCode::OK);
    let (mut chunks, _connection) = opened.chunks();
    let opened_at = tokio::time::Instant::now();
    let mut text = String::new();
    while text.matches(": keepalive\n\n").count() < 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(6), chunks.next())
            .await
            .expect("keepalives within the deadline")
            .expect("the stream is open");
        text.push_str(&chunk);
    }
    let took = opened_at.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "three keepalives a second apart took {took:?}"
    );
    assert_eq!(
        text.replace(": keepalive\n\n", ""),
        "",
        "only keepalives on a quiet stream"
    );
}

#[tokio::test]
async fn filters_pick_events_by_subject_type_and_correlation_id() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let audit = subject(&hub, "audit.>");
    let mut by_subject = open(&hub, &subject_query(&audit), &[]).await;
    let mut by_type = open(&hub, "type=Nope,ProjectCreated&type=ProjectDeleted", &[]).await;
    let mut by_correlation = open(&hub, "correlation_id=c-1", &[]).await;

    let post = |tail: &'static str, correlation: Option<&'static str>| {
        let hub = &hub;
        async move {
            let mut body = json!({ "subject": subject(hub, tail), "payload": {} });
            if let Some(id) = correlation {
                body["correlation_id"] = json!(id);
            }
            let answer = rest::post(hub, &body).await;
            assert_eq!(answer.status, 201, "{answer:?}");
            answer.body["event_id"].as_str().expect("an id").to_owned()
        }
    };
    let audited = post("audit.scan.done", None).await;
    let correlated = post("deploy.job.done", Some("c-1")).await;
    let project = hub.create_project("Filtered", "/srv/filtered").await;
    let both = post("audit.scan.done", Some("c-1")).await;
    let second_project = hub
        .create_project("Filtered Too", "/srv/filtered-too")
        .await;

    let ids = |events: &[Event]| -> Vec<Value> {
        events.iter().map(|e| envelope(e)["id"].clone()).collect()
    };
    assert_eq!(
        ids(&by_subject.take(2).await),
        vec![json!(audited), json!(both)]
    );
    assert_eq!(
        ids(&by_correlation.take(2).await),
        vec![json!(correlated), json!(both)]
    );
    let created = by_type.take(2).await;
    assert!(created.iter().all(|e| e.event == "ProjectCreated"));
    let projects: Vec<Value> = created
        .iter()
        .map(|e| envelope(e)["aggregate_id"].clone())
        .collect();
    assert_eq!(projects, vec![json!(project), json!(second_project)]);
    // Each stream got the last event it matches after the others: nothing
    // else can still come.
    assert!(by_subject
        .next_within(Duration::from_millis(300))
        .await
        .is_none());

    let (status, body) = refused(&hub, "subject=hub..x", &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "INVALID_INPUT");
}

#[tokio::test]
async fn with_a_token_the_stream_needs_it_in_the_header_or_the_query() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some(SecretString::from("sse-token"));
    let hub = TestHub::start_with(config).await;
    for (query, headers) in [
        ("", &[][..]),
        ("token=wrong", &[][..]),
        ("", &[("authorization", "Bearer wrong")][..]),
    ] {
        let (status, body) = refused(&hub, query, headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{query} {headers:?}");
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    }
    let mut by_header = open(&hub, "", &[("authorization", "Bearer sse-token")]).await;
    let mut by_query = open(&hub, "token=sse-token", &[]).await;
    let id = rest::publish_with_token(&hub, "sse-token").await;
    assert_eq!(envelope(&by_header.next().await)["id"], json!(id));
    assert_eq!(envelope(&by_query.next().await)["id"], json!(id));
}

#[tokio::test]
async fn a_page_of_a_foreign_origin_is_refused_like_the_socket() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let foreign = [("origin", "https://attacker.example")];
    let (status, body) = refused(&hub, "", &foreign).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let (socket_status, _) = open_stream(&hub, "", &foreign, None)
        .await
        .expect_err("the socket is refused too");
    assert_eq!(socket_status, status.as_u16());

    let own = format!("http://{}", addr(&hub));
    let mut sse = open(&hub, "", &[("origin", &own)]).await;
    let id = publish(&hub, "origin.checked", json!({})).await;
    assert_eq!(envelope(&sse.next().await)["id"], json!(id));
}

#[tokio::test]
async fn a_plain_get_is_told_to_upgrade_or_ask_for_the_event_stream() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    // reqwest's own GET (it sends `Accept: */*`).
    let plain = hub
        .http()
        .get(format!("{}/api/events/stream", hub.url()))
        .send()
        .await
        .expect("GET /api/events/stream");
    assert_ne!(
        plain.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/event-stream"[..]),
        "a plain GET opened a stream"
    );
    let status = plain.status().as_u16();
    let body = tokio::time::timeout(ARRIVES, plain.json::<Value>())
        .await
        .expect("the whole body within the deadline")
        .expect("a JSON body");
    let mut answers = vec![(status, body)];
    for accept in [
        &[][..],
        &[("accept", "application/json")][..],
        &[("accept", "*/*")][..],
    ] {
        let opened = get(&hub, "", accept, None).await;
        answers.push((opened.status.as_u16(), opened.json().await));
    }
    for (status, body) in answers {
        assert_eq!(status, 406, "{body}");
        assert_eq!(body["error"]["code"], "NOT_ACCEPTABLE", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("WebSocket") && message.contains("Accept: text/event-stream"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn the_websocket_on_the_same_path_still_streams() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let pattern = subject(&hub, "audit.>");
    let mut socket = open_stream(&hub, &subject_query(&pattern), &[], None)
        .await
        .expect("the upgrade is accepted");
    let id = publish(&hub, "socket.still", json!({})).await;
    let Some(Frame::Json(frame)) = next_frame(&mut socket, ARRIVES).await else {
        panic!("the socket sent no event");
    };
    assert_eq!(frame["data"]["id"], json!(id));
    assert_eq!(frame["subject"], json!(subject(&hub, "audit.socket.still")));
}

#[tokio::test]
async fn a_client_that_makes_the_live_broadcast_lag_loses_no_event() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.ws.subscriber_buffer = 4;
    let hub = TestHub::start_with(config).await;
    let opened = get(&hub, "", &[("accept", "text/event-stream")], Some(4096)).await;
    let mut sse = opened.events();

    // About 8 MB of events that this client does not read while they are
    // published: more than socket buffers hold, so the stream waits for it
    // and its broadcast buffer of 4 overflows.
    let big = "x".repeat(200_000);
    let total = 40;
    let mut published = Vec::new();
    for i in 0..total {
        published.push(publish(&hub, "bulk.item", json!({"i": i, "filler": big})).await);
    }
    let mut received = Vec::new();
    for _ in 0..total {
        received.push(envelope(&sse.next().await)["id"].clone());
    }
    let published: Vec<Value> = published.into_iter().map(Value::from).collect();
    assert_eq!(received, published, "every event once, in order");
    let text = hub
        .http()
        .get(format!("{}/metrics", hub.url()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics");
    let catch_ups = text
        .lines()
        .find_map(|line| line.strip_prefix("hub_sse_catch_ups_total "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .expect("the catch-up counter");
    assert!(
        catch_ups >= 1,
        "the stream never fell behind, so this test proves nothing"
    );
}

#[tokio::test]
async fn streams_hold_socket_places_and_a_hub_out_of_them_answers_503() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    // Three quarters of 4 connections: 3 socket places.
    config.http.max_connections = 4;
    let hub = TestHub::start_with(config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(open(&hub, "", &[]).await);
    }
    let (status, body) = refused(&hub, "", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
    drop(held.pop());
    let mut again = wait_until(
        "a socket place freed by a closed stream",
        ARRIVES,
        || async {
            let opened = get(&hub, "", &[("accept", "text/event-stream")], None).await;
            (opened.status == StatusCode::OK).then(|| opened.events())
        },
    )
    .await;
    let id = publish(&hub, "place.taken", json!({})).await;
    assert_eq!(envelope(&again.next().await)["id"], json!(id));
}

#[tokio::test]
async fn a_quiet_stream_outlives_the_servers_timeouts_and_evictions() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.http.http_header_timeout_secs = 1;
    config.http.http_body_timeout_secs = 1;
    config.http.http_idle_timeout_secs = 1;
    config.http.max_connections = 4;
    config.ws.sse_keepalive_secs = 600;
    let hub = TestHub::start_with(config).await;
    let mut sse = open(&hub, "", &[]).await;

    // Connections that send nothing fill the hub; each newcomer past the
    // cap closes the oldest one that has no request in progress.
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(
            tokio::net::TcpStream::connect(addr(&hub))
                .await
                .expect("connect"),
        );
    }
    assert!(
        sse.next_within(Duration::from_secs(3)).await.is_none(),
        "nothing is sent on a quiet stream, and it is not closed"
    );
    let health = rest::get(&hub, "/health").await;
    assert_eq!(health.status, 200, "the hub still serves requests");
    let id = publish(&hub, "quiet.over", json!({})).await;
    assert_eq!(envelope(&sse.next().await)["id"], json!(id));
}

#[tokio::test]
async fn a_since_replay_starts_before_the_first_event_in_feed_order_recorded_since_then() {
    let db = TestDb::create().await;
    let pool = feed::migrated_pool(&db).await;
    let read = ReadModels::new(pool.clone());
    let since: chrono::DateTime<chrono::Utc> = "2024-05-01T12:00:00Z".parse().expect("a time");
    let at = |transaction_id, position| FeedPosition {
        transaction_id,
        position,
    };
    assert_eq!(
        read.replay_start_since(since).await.expect("a start"),
        FeedPosition::START,
        "nothing logged and no checkpoint: the start of the feed"
    );

    // In feed order (transaction, position): recorded 11:00, 12:30, 12:10
    // (inserted earlier by a transaction that committed later), 13:00.
    for (transaction_id, position, recorded) in [
        (10, 1, "2024-05-01T11:00:00Z"),
        (11, 3, "2024-05-01T12:30:00Z"),
        (12, 2, "2024-05-01T12:10:00Z"),
        (13, 4, "2024-05-01T13:00:00Z"),
    ] {
        sqlx::query(
            "INSERT INTO event_log (id, subject, aggregate_type, aggregate_id, sequence, \
             event_type, event_version, position, transaction_id, origin, payload, \"timestamp\") \
             VALUES (gen_random_uuid(), 'hub.h.a.b', 'A', 'a', $1, 'T', '1.0', $1, $2, '{}', '{}', $3::timestamptz)",
        )
        .bind(position)
        .bind(transaction_id)
        .bind(recorded)
        .execute(&pool)
        .await
        .expect("a logged event");
    }
    sqlx::query(
        "INSERT INTO feed_checkpoints (consumer, transaction_id, position) VALUES ('event_log', '13', 4)",
    )
    .execute(&pool)
    .await
    .expect("the log's checkpoint");
    assert_eq!(
        read.replay_start_since(since).await.expect("a start"),
        at(11, 2),
        "just before the first event in feed order recorded at or after 12:00"
    );
    let exactly: chrono::DateTime<chrono::Utc> = "2024-05-01T13:00:00Z".parse().expect("a time");
    assert_eq!(
        read.replay_start_since(exactly).await.expect("a start"),
        at(13, 3),
        "an event recorded exactly then is included"
    );
    let later: chrono::DateTime<chrono::Utc> = "2024-05-02T00:00:00Z".parse().expect("a time");
    assert_eq!(
        read.replay_start_since(later).await.expect("a start"),
        at(13, 4),
        "nothing logged since then: the log's checkpoint, so what it has not logged yet is read"
    );

    sqlx::query(
        "INSERT INTO parked_events (consumer, event_id, transaction_id, position, aggregate_type, \
         aggregate_id, sequence, event_type, error) \
         VALUES ('event_log', gen_random_uuid(), '12', 7, 'A', 'b', 1, 'T', 'failed')",
    )
    .execute(&pool)
    .await
    .expect("a parked event");
    assert_eq!(
        read.replay_start_since(later).await.expect("a start"),
        at(12, 6),
        "an event the log parked is not in it: the replay starts before it"
    );
}

#[tokio::test]
async fn stopping_the_hub_ends_its_streams_at_once() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let mut sse = open(&hub, "", &[]).await;
    let id = publish(&hub, "before.stop", json!({})).await;
    assert_eq!(envelope(&sse.next().await)["id"], json!(id));

    let started = tokio::time::Instant::now();
    hub.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the hub took {took:?} to stop: it waited for the stream's answer to end"
    );
    let end = tokio::time::timeout(ARRIVES, sse.events.next())
        .await
        .expect("the stream ends");
    assert!(end.is_none(), "the stream ended: {end:?}");
}
