//! A client for the REST event API: `POST/GET /api/events` and the event
//! socket `/api/events/stream`.

use std::time::Duration;

use futures::StreamExt as _;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::TestHub;

/// An HTTP answer: status, headers and the body as JSON (`Value::Null`
/// when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// Reads a response whole.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("read the response body");
        Self {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `error.code` of a REST error body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// `error.message` of a REST error body.
    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// `hub.<hub_id>.<tail>` for `hub`.
pub fn subject(hub: &TestHub, tail: &str) -> String {
    format!("hub.{}.{tail}", hub.hub_id())
}

/// `POST /api/events` with a raw body and extra headers.
pub async fn post_raw(
    hub: &TestHub,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = hub
        .http()
        .post(format!("{}/api/events", hub.url()))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::read(request.send().await.expect("POST /api/events")).await
}

/// `POST /api/events` with a JSON body.
pub async fn post(hub: &TestHub, body: &Value) -> Answer {
    post_raw(hub, body.to_string(), &[]).await
}

/// Publishes `payload` on `subject` and expects 201; returns the body.
///
/// # Panics
/// On any other answer.
pub async fn publish(hub: &TestHub, subject: &str, payload: Value) -> Value {
    let answer = post(hub, &json!({ "subject": subject, "payload": payload })).await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "publishing on {subject}: {answer:?}"
    );
    answer.body
}

/// Publishes an event with the bearer `token`; returns its id.
///
/// # Panics
/// On any answer but 201.
pub async fn publish_with_token(hub: &TestHub, token: &str) -> String {
    let bearer = format!("Bearer {token}");
    let body = json!({ "subject": subject(hub, "audit.with_token"), "payload": {} });
    let answer = post_raw(hub, body.to_string(), &[("authorization", &bearer)]).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    answer.body["event_id"]
        .as_str()
        .expect("an event id")
        .to_owned()
}

/// `GET <path>` (with its query string) on `hub`.
pub async fn get(hub: &TestHub, path: &str) -> Answer {
    Answer::read(
        hub.http()
            .get(format!("{}{path}", hub.url()))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}")),
    )
    .await
}

/// `GET /api/events` with `query` as pairs (encoded here).
pub async fn list(hub: &TestHub, query: &[(&str, &str)]) -> Answer {
    Answer::read(
        hub.http()
            .get(format!("{}/api/events", hub.url()))
            .query(query)
            .send()
            .await
            .expect("GET /api/events"),
    )
    .await
}

/// An open event socket.
pub type EventSocket = WebSocketStream<TcpStream>;

/// Opens `/api/events/stream?<query>` (`query` already encoded) with extra
/// headers, and optionally a small TCP receive buffer. A refused upgrade
/// gives its status and body.
pub async fn open_stream(
    hub: &TestHub,
    query: &str,
    headers: &[(&str, &str)],
    receive_buffer: Option<u32>,
) -> Result<EventSocket, (u16, Value)> {
    let addr: std::net::SocketAddr = hub
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("the hub's URL is http://<ip>:<port>");
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    if let Some(bytes) = receive_buffer {
        socket
            .set_recv_buffer_size(bytes)
            .expect("set the receive buffer size");
    }
    let stream = socket.connect(addr).await.expect("connect to the hub");
    let mut request = format!("ws://{addr}/api/events/stream?{query}")
        .into_client_request()
        .expect("a WebSocket request");
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(err) => panic!("WebSocket handshake with /api/events/stream failed: {err}"),
    }
}

/// What the event socket sent next.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A JSON text frame.
    Json(Value),
    /// A close frame (code) or the end of the connection (`None`).
    Closed(Option<u16>),
}

/// The next text or close frame, or `None` when nothing came within `timeout`.
pub async fn next_frame(socket: &mut EventSocket, timeout: Duration) -> Option<Frame> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                return Some(Frame::Json(
                    serde_json::from_str(&text).expect("the event socket sends JSON"),
                ))
            }
            Some(Ok(Message::Close(frame))) => {
                return Some(Frame::Closed(frame.map(|f| u16::from(f.code))))
            }
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return Some(Frame::Closed(None)),
        }
    }
}
