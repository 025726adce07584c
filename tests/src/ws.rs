//! A small GraphQL-over-WebSocket client for `/graphql/ws`, speaking both
//! `graphql-transport-ws` (the `graphql-ws` library) and the legacy
//! `graphql-ws` (subscriptions-transport-ws).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::TestHub;

/// `projectChanged(id)` with the fields tests look at.
pub const PROJECT_CHANGED: &str =
    "subscription($id: ID) { projectChanged(id: $id) { id name status version } }";

/// `events(filter, after)` with the fields tests look at.
pub const EVENTS: &str = "subscription($filter: EventFilter, $after: String) { \
     events(filter: $filter, after: $after) { id cursor position aggregateId sequence eventType } }";

/// The two subprotocols `/graphql/ws` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`: `subscribe`, `next`, `error`, `complete`,
    /// `ping`/`pong`.
    TransportWs,
    /// Legacy `graphql-ws`: `start`, `data`, `error`, `complete`, `ka`.
    LegacyWs,
}

impl Protocol {
    /// The `Sec-WebSocket-Protocol` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::TransportWs => "graphql-transport-ws",
            Self::LegacyWs => "graphql-ws",
        }
    }
}

/// A message from the server (keep-alives and pings are handled inside).
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// `connection_ack`.
    Ack,
    /// `next` / `data`: a GraphQL response `{data, errors}` for subscription `id`.
    Next {
        /// The subscription.
        id: String,
        /// The response.
        payload: Value,
    },
    /// `error`: the subscription `id` failed before it started.
    Error {
        /// The subscription.
        id: String,
        /// The errors.
        payload: Value,
    },
    /// `complete`: the subscription `id` ended.
    Complete {
        /// The subscription.
        id: String,
    },
    /// `connection_error` (legacy protocol).
    ConnectionError(Value),
    /// The socket ended: with the close frame's code and reason, or `None`
    /// when the server dropped the connection without one.
    Closed(Option<(u16, String)>),
}

/// A GraphQL WebSocket client connection.
pub struct WsClient {
    socket: WebSocketStream<TcpStream>,
    protocol: Protocol,
    answer_pings: bool,
    closed: bool,
}

/// A hub's address, from its URL (`http://<ip>:<port>`).
fn address(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("the hub's URL is http://<ip>:<port>")
}

impl WsClient {
    /// Opens `/graphql/ws` of `hub` with `protocol` (no `connection_init` yet).
    pub async fn connect(hub: &TestHub, protocol: Protocol) -> Self {
        Self::connect_url(&hub.url(), protocol, &[]).await
    }

    /// Opens `/graphql/ws` of the hub at `url` (`http://<ip>:<port>`) with
    /// `protocol` and the extra request `headers` (e.g. `Origin`).
    ///
    /// # Panics
    /// When the upgrade is refused.
    pub async fn connect_url(url: &str, protocol: Protocol, headers: &[(&str, &str)]) -> Self {
        Self::try_connect_url(url, protocol, headers)
            .await
            .unwrap_or_else(|status| panic!("the upgrade of /graphql/ws was refused: {status}"))
    }

    /// Like [`WsClient::connect_url`]; a refused upgrade gives its status.
    pub async fn try_connect_url(
        url: &str,
        protocol: Protocol,
        headers: &[(&str, &str)],
    ) -> Result<Self, u16> {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        Self::handshake(url, protocol, socket, headers).await
    }

    /// Like [`WsClient::connect`], with a small TCP receive buffer, so that a
    /// client that stops reading pushes back on the server quickly.
    pub async fn connect_with_receive_buffer(
        hub: &TestHub,
        protocol: Protocol,
        bytes: u32,
    ) -> Self {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .set_recv_buffer_size(bytes)
            .expect("set the receive buffer size");
        Self::handshake(&hub.url(), protocol, socket, &[])
            .await
            .unwrap_or_else(|status| panic!("the upgrade of /graphql/ws was refused: {status}"))
    }

    async fn handshake(
        url: &str,
        protocol: Protocol,
        socket: TcpSocket,
        headers: &[(&str, &str)],
    ) -> Result<Self, u16> {
        let addr = address(url);
        let stream = socket.connect(addr).await.expect("connect to the hub");
        let mut request = format!("ws://{addr}/graphql/ws")
            .into_client_request()
            .expect("a WebSocket request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(protocol.name()),
        );
        for (name, value) in headers {
            let name =
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("a header name");
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(value).expect("a header value"));
        }
        match tokio_tungstenite::client_async(request, stream).await {
            Ok((socket, _)) => Ok(Self {
                socket,
                protocol,
                answer_pings: true,
                closed: false,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(err) => panic!("WebSocket handshake with /graphql/ws failed: {err}"),
        }
    }

    /// Connects, sends `connection_init` with `payload` and expects `connection_ack`.
    ///
    /// # Panics
    /// When the server does not acknowledge.
    pub async fn connect_and_init(hub: &TestHub, protocol: Protocol, payload: Value) -> Self {
        let mut client = Self::connect(hub, protocol).await;
        if let Err(answer) = client.init(payload).await {
            panic!("connection_init was not acknowledged: {answer:?}");
        }
        client
    }

    /// Stops answering protocol pings, so the client sends nothing at all.
    pub fn never_answer(&mut self) {
        self.answer_pings = false;
    }

    /// Sends one JSON message.
    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("send a WebSocket message");
    }

    /// Sends `connection_init` with `payload`; `Ok` on `connection_ack`,
    /// otherwise what the server answered instead.
    pub async fn init(&mut self, payload: Value) -> Result<(), Incoming> {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        match self.next(Duration::from_secs(10)).await {
            Incoming::Ack => Ok(()),
            other => Err(other),
        }
    }

    /// Starts subscription `id` (`subscribe` or `start`, by protocol).
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = match self.protocol {
            Protocol::TransportWs => "subscribe",
            Protocol::LegacyWs => "start",
        };
        self.send(json!({
            "type": kind,
            "id": id,
            "payload": { "query": query, "variables": variables },
        }))
        .await;
    }

    /// The next message, or `None` if none came within `timeout`. Once the
    /// socket has ended, always `Closed`.
    pub async fn try_next(&mut self, timeout: Duration) -> Option<Incoming> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.closed {
                return Some(Incoming::Closed(None));
            }
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    self.closed = true;
                    return Some(Incoming::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ));
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => {
                    self.closed = true;
                    return Some(Incoming::Closed(None));
                }
            };
            let message: Value = serde_json::from_str(&text).expect("the server sends JSON");
            let id = || message["id"].as_str().unwrap_or_default().to_owned();
            match message["type"].as_str().unwrap_or_default() {
                "connection_ack" => return Some(Incoming::Ack),
                "next" | "data" => {
                    return Some(Incoming::Next {
                        id: id(),
                        payload: message["payload"].clone(),
                    })
                }
                "error" => {
                    return Some(Incoming::Error {
                        id: id(),
                        payload: message["payload"].clone(),
                    })
                }
                "complete" => return Some(Incoming::Complete { id: id() }),
                "connection_error" => {
                    return Some(Incoming::ConnectionError(message["payload"].clone()))
                }
                "ping" if self.answer_pings => self.send(json!({ "type": "pong" })).await,
                _ => {}
            }
        }
    }

    /// The next message.
    ///
    /// # Panics
    /// When none comes within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Incoming {
        self.try_next(timeout)
            .await
            .unwrap_or_else(|| panic!("no message from /graphql/ws within {timeout:?}"))
    }

    /// The `data` of the next result of subscription `id`.
    ///
    /// # Panics
    /// When something else comes (an error, the end of the subscription or
    /// of the socket), or nothing within `timeout`.
    pub async fn next_data(&mut self, id: &str, timeout: Duration) -> Value {
        match self.next(timeout).await {
            Incoming::Next { id: got, payload }
                if got == id && payload["errors"].is_null() && !payload["data"].is_null() =>
            {
                payload["data"].clone()
            }
            other => panic!("expected data for subscription {id}, got {other:?}"),
        }
    }

    /// Makes changes with `poke` until subscription `id` reports one; returns
    /// that first result's data. The server starts a subscription some time
    /// after `subscribe` without saying so; a change made before then is
    /// not seen, so probing is the only way to know it is live. Results of
    /// earlier probes may still follow: callers skip what is not theirs.
    ///
    /// # Panics
    /// When nothing arrives within 15 s of probing.
    pub async fn wait_live<F, Fut>(&mut self, id: &str, mut poke: F) -> Value
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            poke().await;
            if let Some(message) = self.try_next(Duration::from_millis(500)).await {
                match message {
                    Incoming::Next { id: got, payload } if got == id => {
                        assert!(
                            payload["errors"].is_null(),
                            "subscription failed: {payload}"
                        );
                        return payload["data"].clone();
                    }
                    other => panic!("expected data for subscription {id}, got {other:?}"),
                }
            }
        }
        panic!("subscription {id} reported none of the changes made for 15 s");
    }

    /// [`Self::wait_live`] for a `projectChanged` subscription, probing by
    /// creating projects through `hub` (`Probe 1`, `Probe 2`, ...).
    ///
    /// # Panics
    /// As [`Self::wait_live`].
    pub async fn wait_live_creating_probes(&mut self, id: &str, hub: &crate::TestHub) -> Value {
        let mut probes = 0;
        self.wait_live(id, || {
            probes += 1;
            let n = probes;
            async move {
                hub.create_project(&format!("Probe {n}"), &format!("/srv/probe-{n}"))
                    .await;
            }
        })
        .await
    }
}
