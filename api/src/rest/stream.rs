//! `GET /api/events/stream`: events as they are recorded, over a WebSocket
//! (here) or as Server-Sent Events ([`super::sse`]), chosen by the request:
//! a WebSocket upgrade gets the socket, a request whose `Accept` names
//! `text/event-stream` gets SSE, anything else a 406 that names both.
//!
//! The socket (`?subject=hub.>`) sends every live event whose subject
//! matches, as a text frame `{"subject": ..., "data": <envelope>}`. It
//! follows this process's [`infrastructure::nats::LiveFeed`]. A client that
//! falls more than the subscriber buffer behind gets a last frame
//! `{"error": "..."}` and the socket is closed: it should reconnect and
//! read what it missed with `GET /api/events?since=...` (or use SSE, which
//! resumes by itself).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use domain::SubjectFilter;
use futures::{SinkExt as _, StreamExt as _};
use infrastructure::nats::Envelope;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use super::error::{ErrorBody, RestError};
use crate::http::{access, auth};
use crate::state::{AppState, Stopping};

/// How long one frame may take to reach a client before it is given up on.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The query parameters.
#[derive(Debug, Default, Deserialize)]
pub struct StreamParams {
    /// Which events: a NATS pattern (default `hub.>`) or a `LIKE` pattern.
    subject: Option<String>,
    /// The API token, for clients that cannot set headers (browsers).
    token: Option<String>,
}

/// Serves SSE to a request for it, explains the choice to a plain request,
/// and handles an upgrade: checks the token and the subject first, so a bad
/// request is answered with a status instead of a socket.
#[utoipa::path(
    get,
    path = "/api/events/stream",
    operation_id = "streamEvents",
    tag = "events",
    summary = "Follow events as they are recorded",
    description = "With `Accept: text/event-stream`: Server-Sent Events, each `id: <position>`, \
        `event: <type>`, `data: <envelope>`, resumable with `Last-Event-ID` (or `after`) without a \
        gap or a duplicate; `: keepalive` comments while quiet. As a WebSocket upgrade: one text \
        frame `{\"subject\", \"data\": <envelope>}` per live event (only `subject` and `token` \
        apply). Either holds one of the hub's socket places until it closes.",
    params(
        super::sse::Params,
        ("last-event-id" = Option<i64>, Header, description = "The `id` of the last event received: resume right after it."),
    ),
    responses(
        (status = 101, description = "Upgraded to a WebSocket."),
        (status = 200, description = "The event stream (it does not end while the hub runs).",
            content_type = "text/event-stream", body = String),
        (status = 401, description = "A token is configured and was not sent.", body = ErrorBody),
        (status = 404, description = "No event has the `Last-Event-ID` or `after` given.", body = ErrorBody),
        (status = 406, description = "Neither a WebSocket upgrade nor `Accept: text/event-stream`.", body = ErrorBody),
        (status = 422, description = "A parameter is not acceptable; the message says which.", body = ErrorBody),
        (status = 503, description = "No socket place is left, or the database is unavailable.", body = ErrorBody),
    ),
    security((), ("token" = []))
)]
pub async fn stream(
    State(state): State<AppState>,
    params: Result<Query<StreamParams>, QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !access::is_websocket_upgrade(&headers) {
        if access::asks_for_event_stream(&headers) {
            return super::sse::stream(state, &uri, &headers).await;
        }
        return RestError::NotAStream.into_response();
    }
    let Ok(Query(params)) = params else {
        return RestError::invalid("the query string is malformed").into_response();
    };
    let access = &state.access;
    let authorized = match (&access.token, &params.token) {
        (Some(token), Some(sent)) => auth::token_matches(token, sent),
        _ => access.can_read(&headers),
    };
    if !authorized {
        tracing::info!("refused an event stream without a valid token");
        return RestError::Unauthenticated.into_response();
    }
    let filter = match SubjectFilter::parse(params.subject.as_deref().unwrap_or("hub.>")) {
        Ok(filter) => filter,
        Err(err) => return RestError::invalid(format!("subject: {err}")).into_response(),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(slot) = state.sockets.take() else {
        return crate::http::ws::too_many_sockets();
    };
    // Subscribe before answering, so nothing published after the client
    // sees the upgrade is missed.
    let live = state.hub.live.subscribe();
    upgrade
        .read_buffer_size(crate::http::ws::READ_BUFFER_BYTES)
        .max_message_size(state.limits.ws_max_message_bytes)
        .max_frame_size(state.limits.ws_max_message_bytes)
        .on_upgrade(move |socket| {
            crate::http::ws::holding(slot, forward(socket, live, filter, state.stopping.clone()))
        })
}

/// What ended a stream.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The client closed or went away.
    ClientGone,
    /// The client fell behind by this many events.
    Lagged(u64),
    /// The hub is shutting down (or its live feed is gone).
    FeedClosed,
}

async fn forward(
    socket: WebSocket,
    mut live: broadcast::Receiver<Arc<Envelope>>,
    filter: SubjectFilter,
    stopping: Stopping,
) {
    let (mut sink, mut incoming) = socket.split();
    tracing::debug!(subject = %filter, "event stream opened");
    let stopped = stopping.stopped();
    tokio::pin!(stopped);
    let end = loop {
        tokio::select! {
            () = &mut stopped => break End::FeedClosed,
            event = live.recv() => match event {
                Ok(event) if filter.matches(&event.subject) => {
                    let frame = json!({ "subject": &event.subject, "data": &*event }).to_string();
                    let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(frame.into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break End::ClientGone;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(skipped)) => break End::Lagged(skipped),
                Err(RecvError::Closed) => break End::FeedClosed,
            },
            message = incoming.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break End::ClientGone,
                // Pings are answered by the socket itself; anything else a
                // client sends is ignored.
                Some(Ok(_)) => {}
            },
        }
    };
    tracing::debug!(?end, "event stream ended");
    let (code, reason) = match end {
        End::ClientGone => return,
        End::Lagged(skipped) => {
            let error = format!(
                "this stream fell {skipped} events behind and was closed; reconnect, and read what you missed with GET /api/events?since=<timestamp of your last event>"
            );
            let frame = json!({ "error": error }).to_string();
            let _ =
                tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(frame.into()))).await;
            (close_code::AGAIN, "fell behind")
        }
        End::FeedClosed => (close_code::AWAY, "the hub is shutting down"),
    };
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(close)).await;
}
