//! `GET /graphql/ws`: GraphQL subscriptions over WebSocket, in both the
//! `graphql-transport-ws` protocol (the `graphql-ws` library) and the legacy
//! `graphql-ws` protocol (subscriptions-transport-ws).
//!
//! The hub runs the handshake itself, so that refusals close the socket
//! the way `graphql-ws` clients expect (they stop retrying on these codes),
//! then serves the protocol (`protocol`), running each operation through
//! the fan-out (`graphql::fanout`), which shares one stream between
//! subscribers of the same operation:
//!
//! | close code | when |
//! | --- | --- |
//! | 4401 `Unauthorized` | a `subscribe` (or `start`) before `connection_init` was acknowledged |
//! | 4403 `Forbidden` | `connection_init` without the hub's token, or with a wrong one |
//! | 4408 `Connection initialisation timeout` | no `connection_init` within `HUB_WS_INIT_TIMEOUT_SECS` |
//! | 4400 | the first message is not JSON of the protocol |
//!
//! On the legacy protocol a `connection_error` message comes first.
//!
//! The upgrade answers with the first protocol of the client's list that
//! the hub speaks, the one it then speaks. When as many WebSockets are open
//! as the hub allows, the upgrade is answered 503.
//!
//! Layout: this module holds the upgrade and the handshake; `protocol`
//! the messages after it.

mod protocol;

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::WebSocketProtocols;
use async_graphql::Data;
use async_graphql_axum::GraphQLProtocol;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

use crate::graphql::door::{SlotHeld, SocketSubscriptions};
use crate::graphql::fanout::{Fanout, SocketSession};
use crate::graphql::RequestContext;
use crate::http::access::{refusal, Access};
use crate::http::auth::token_matches;
use crate::http::correlation::CorrelationId;
use crate::http::server::SocketSlot;
use crate::state::{AppState, Stopping};

/// Read buffer of a server WebSocket. tungstenite zero-fills its read buffer
/// up to this size before each attempt to read the socket, and a socket
/// that writes a change tries a read again after it; at its default
/// (128 KiB), with 1,000 subscribers that memset took 12% of the machine's
/// CPU in the `subscriptions` benchmark, and each socket keeps the buffer
/// while open. Clients send small messages (subscribe, ping, complete):
/// 1 KiB holds them, and a larger one still arrives (up to
/// `HUB_WS_MAX_MESSAGE_BYTES`) over several reads.
pub(crate) const READ_BUFFER_BYTES: usize = 1024;

/// Where a client may put the token in its `connection_init` payload, e.g.
/// graphql-ws's `connectionParams`.
///
/// - `{"authToken": "t"}` (the usual Apollo example)
/// - `{"token": "t"}`
/// - `{"Authorization": "Bearer t"}` or `{"authorization": ...}`
/// - `{"headers": {"Authorization": "Bearer t"}}`
///
/// The `Bearer ` prefix is optional everywhere. An empty token counts as
/// none.
fn token_in(payload: &Value) -> Option<String> {
    let bearer = |v: &Value| {
        v.as_str()
            .map(|s| s.strip_prefix("Bearer ").unwrap_or(s).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let in_object = |object: &Value| {
        ["authToken", "token", "Authorization", "authorization"]
            .iter()
            .find_map(|key| object.get(*key).and_then(bearer))
    };
    in_object(payload).or_else(|| payload.get("headers").and_then(in_object))
}

/// The protocol the upgrade agrees on: the first of the client's that the
/// hub speaks (as [`GraphQLProtocol`] picks it).
fn protocol_of(headers: &HeaderMap) -> WebSocketProtocols {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|protocols| {
            protocols
                .split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
        .unwrap_or(WebSocketProtocols::GraphQLWS)
}

/// The GraphQL WebSocket endpoint.
pub fn router() -> Router<AppState> {
    Router::new().route("/graphql/ws", get(graphql_ws))
}

/// Upgrades to a GraphQL WebSocket.
pub async fn graphql_ws(
    State(state): State<AppState>,
    Extension(CorrelationId(correlation_id)): Extension<CorrelationId>,
    headers: HeaderMap,
    // Refuses an upgrade that offers no protocol the hub speaks.
    _protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(slot) = state.sockets.take() else {
        return too_many_sockets();
    };
    let kind = protocol_of(&headers);
    let serving = Serving {
        kind,
        rules: HandshakeRules {
            correlation_id,
            access: state.access.clone(),
            init_timeout: state.limits.ws_init_timeout,
        },
        fanout: state.fanout.clone(),
        stopping: state.stopping.clone(),
    };
    upgrade
        .protocols([kind.sec_websocket_protocol()])
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(state.limits.ws_max_message_bytes)
        .max_frame_size(state.limits.ws_max_message_bytes)
        .on_upgrade(move |socket| holding(slot, serving.serve(socket)))
}

/// What one socket's task keeps: only what it uses, since every open
/// socket keeps it for as long as it is open (the handshake's part only
/// until the handshake is over).
struct Serving {
    kind: WebSocketProtocols,
    rules: HandshakeRules,
    fanout: Arc<Fanout>,
    stopping: Stopping,
}

/// What the handshake checks a socket against.
struct HandshakeRules {
    correlation_id: String,
    access: Arc<Access>,
    init_timeout: Duration,
}

/// 503 for an upgrade past the most WebSockets the hub keeps open.
pub(crate) fn too_many_sockets() -> Response {
    tracing::warn!("refused a WebSocket: as many are open as the hub allows");
    let mut response = refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the hub has as many WebSockets and event streams open as it allows; try again shortly",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Keeps `slot` until `socket`'s task ends.
pub(crate) async fn holding<F: std::future::Future<Output = ()>>(slot: SocketSlot, socket: F) {
    socket.await;
    drop(slot);
}

/// How the handshake ended.
enum Handshake {
    /// `connection_init`, with its payload.
    Init { payload: Value },
    /// Refused: close with this code and reason.
    Refuse { code: u16, reason: &'static str },
    /// The client went away.
    Gone,
}

impl Serving {
    async fn serve(self, mut socket: WebSocket) {
        let Self {
            kind,
            rules,
            fanout,
            stopping,
        } = self;
        let Some(session) = rules.handshake(&mut socket, kind).await else {
            return;
        };
        // On the heap: the handshake's state is not kept beside the
        // protocol's for the rest of the socket's life.
        Box::pin(protocol::serve(socket, kind, session, fanout, stopping)).await;
    }
}

impl HandshakeRules {
    /// Waits for `connection_init` and checks its token: the session, or
    /// `None` once the socket is refused (and closed) or gone.
    async fn handshake(
        self,
        socket: &mut WebSocket,
        kind: WebSocketProtocols,
    ) -> Option<SocketSession> {
        let handshake = match tokio::time::timeout(self.init_timeout, first_message(socket)).await {
            Ok(handshake) => handshake,
            Err(_) => {
                tracing::info!(timeout = ?self.init_timeout, "closed a subscription socket that never sent connection_init");
                Handshake::Refuse {
                    code: 4408,
                    reason: "Connection initialisation timeout",
                }
            }
        };
        let payload = match handshake {
            Handshake::Init { payload } => payload,
            Handshake::Refuse { code, reason } => {
                refuse(socket, kind, code, reason).await;
                return None;
            }
            Handshake::Gone => return None,
        };
        let access = &self.access;
        let authorized = match &access.token {
            None => true,
            Some(token) => token_in(&payload).is_some_and(|sent| token_matches(token, &sent)),
        };
        if !authorized && !access.public_reads {
            tracing::info!("refused a subscription socket without a valid token");
            let reason = "Forbidden: this hub needs its API token in connection_init, e.g. {\"authToken\": \"<token>\"}";
            refuse(socket, kind, 4403, reason).await;
            return None;
        }
        let mut data = Data::default();
        let context = RequestContext {
            correlation_id: self.correlation_id,
            authorized,
            may_read: true,
            user: if access.token.is_some() && authorized {
                "token"
            } else {
                "anonymous"
            }
            .to_owned(),
        };
        data.insert(context.clone());
        data.insert(SlotHeld);
        Some(SocketSession {
            data: Arc::new(data),
            access: context,
            subscriptions: SocketSubscriptions::default(),
        })
    }
}

/// Reads until the client's first protocol message (pings aside).
async fn first_message(socket: &mut WebSocket) -> Handshake {
    loop {
        let message = match socket.recv().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Handshake::Gone,
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => message,
            Some(Ok(_)) => continue,
        };
        let parsed: Option<Value> = match &message {
            Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
            Message::Binary(bytes) => serde_json::from_slice(bytes).ok(),
            _ => None,
        };
        let Some(parsed) = parsed else {
            return Handshake::Refuse {
                code: 4400,
                reason: "the first message must be a JSON connection_init",
            };
        };
        return match parsed.get("type").and_then(Value::as_str) {
            Some("connection_init") => Handshake::Init {
                payload: parsed.get("payload").cloned().unwrap_or(Value::Null),
            },
            Some("subscribe" | "start") => Handshake::Refuse {
                code: 4401,
                reason: "Unauthorized: send connection_init and wait for connection_ack first",
            },
            // graphql-transport-ws allows pings at any time.
            Some("ping") => continue,
            _ => Handshake::Refuse {
                code: 4400,
                reason: "the first message must be connection_init",
            },
        };
    }
}

/// Closes the socket with `code`; on the legacy protocol, says why in a
/// `connection_error` first (its clients read that, not the close frame).
async fn refuse(socket: &mut WebSocket, kind: WebSocketProtocols, code: u16, reason: &'static str) {
    if kind == WebSocketProtocols::SubscriptionsTransportWS {
        let error = json!({ "type": "connection_error", "payload": { "message": reason } });
        let _ = socket.send(Message::Text(error.to_string().into())).await;
    }
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = socket.send(close).await;
}

#[cfg(test)]
mod tests {
    use super::token_in;
    use serde_json::json;

    #[test]
    fn tokens_are_found_in_the_usual_init_payload_shapes() {
        assert_eq!(
            token_in(&json!({"Authorization": "Bearer a"})).as_deref(),
            Some("a")
        );
        assert_eq!(
            token_in(&json!({"authorization": "b"})).as_deref(),
            Some("b")
        );
        assert_eq!(
            token_in(&json!({"headers": {"Authorization": "Bearer c"}})).as_deref(),
            Some("c")
        );
        assert_eq!(token_in(&json!({"token": "d"})).as_deref(), Some("d"));
        assert_eq!(token_in(&json!({"authToken": "e"})).as_deref(), Some("e"));
        assert_eq!(token_in(&json!({})), None);
        assert_eq!(token_in(&json!(null)), None);
    }

    #[test]
    fn an_empty_token_is_no_token() {
        assert_eq!(token_in(&json!({"token": ""})), None);
        assert_eq!(token_in(&json!({"authToken": "  "})), None);
        assert_eq!(token_in(&json!({"Authorization": "Bearer "})), None);
        assert_eq!(
            token_in(&json!({"token": "", "authToken": "f"})).as_deref(),
            Some("f"),
            "an empty one does not hide another"
        );
    }
}
