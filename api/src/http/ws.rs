//! `GET /graphql/ws`: GraphQL subscriptions over WebSocket, in both the
//! `graphql-transport-ws` protocol (the `graphql-ws` library) and the legacy
//! `graphql-ws` protocol (subscriptions-transport-ws).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;

use crate::app::AppState;
use crate::graphql::error::{ApiError, ErrorCode};
use crate::graphql::RequestContext;
use crate::http::auth::token_matches;
use crate::http::correlation::CorrelationId;

/// Reads a token from a `connection_init` payload: `{"Authorization":
/// "Bearer t"}`, `{"authorization": ...}`, `{"headers": {"Authorization": ...}}`
/// or `{"token": "t"}`.
fn token_in(payload: &serde_json::Value) -> Option<String> {
    let bearer = |v: &serde_json::Value| {
        v.as_str()
            .map(|s| s.strip_prefix("Bearer ").unwrap_or(s).to_owned())
    };
    ["Authorization", "authorization"]
        .iter()
        .find_map(|key| payload.get(*key).and_then(bearer))
        .or_else(|| {
            payload.get("headers").and_then(|h| {
                ["Authorization", "authorization"]
                    .iter()
                    .find_map(|key| h.get(*key).and_then(bearer))
            })
        })
        .or_else(|| payload.get("token").and_then(bearer))
}

/// Read buffer of a server WebSocket. tungstenite zero-fills its read buffer
/// up to this size before each socket read; at its default (128 KiB), with
/// 1,000 subscribers that memset took 12% of the machine's CPU in the
/// `subscriptions` benchmark. Clients send small messages (subscribe,
/// ping, complete): 4 KiB holds them, and a larger one still arrives
/// (up to `HUB_WS_MAX_MESSAGE_BYTES`) over several reads.
pub(crate) const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Upgrades to a GraphQL WebSocket.
pub async fn graphql_ws(
    State(state): State<AppState>,
    Extension(CorrelationId(correlation_id)): Extension<CorrelationId>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let init_timeout = state.ws_init_timeout;
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(state.ws_max_message_bytes)
        .max_frame_size(state.ws_max_message_bytes)
        .on_upgrade(move |socket| async move {
            let initialized = Arc::new(AtomicBool::new(false));
            let init_flag = initialized.clone();
            let token = state.api_token.clone();
            let socket = GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let authorized = match &token {
                        None => true,
                        Some(token) => token_in(&payload).is_some_and(|sent| token_matches(token, &sent)),
                    };
                    if !authorized {
                        tracing::info!("refused a subscription socket without a valid token");
                        return Err(ApiError::new(
                            ErrorCode::Unauthenticated,
                            "subscriptions need the hub's API token in the connection_init payload, e.g. {\"Authorization\": \"Bearer <token>\"}",
                        )
                        .into());
                    }
                    init_flag.store(true, Ordering::SeqCst);
                    let mut data = Data::default();
                    data.insert(RequestContext {
                        correlation_id,
                        authorized: true,
                        user: if token.is_some() { "token" } else { "anonymous" }.to_owned(),
                    });
                    Ok(data)
                });
            tokio::select! {
                () = socket.serve() => {}
                () = close_if_not_initialized(initialized, init_timeout) => {
                    tracing::info!(?init_timeout, "closed a subscription socket that never sent connection_init");
                }
            }
        })
}

/// Completes after `timeout` if the socket has not been initialized by
/// then; otherwise never.
async fn close_if_not_initialized(initialized: Arc<AtomicBool>, timeout: Duration) {
    tokio::time::sleep(timeout).await;
    if initialized.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
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
        assert_eq!(token_in(&json!({})), None);
        assert_eq!(token_in(&json!(null)), None);
    }
}
