//! A GraphQL socket after its `connection_init` was accepted: the client's
//! messages in either protocol, and each operation's responses framed
//! with its id.
//!
//! It answers as async-graphql's own protocol handler does (the same
//! messages, close codes and order), but takes each response as JSON text
//! from the fan-out ([`Fanout`]), so that a response shared by many
//! subscribers is serialized once and each socket only frames it:
//!
//! | client sends | the hub answers |
//! | --- | --- |
//! | `subscribe` / `start` | the operation's results (`next` / `data`), then `complete`; an id already running is replaced |
//! | `complete` / `stop` | `complete`, if the id was running |
//! | `ping` | `pong` |
//! | `connection_terminate` | closes the socket |
//! | a second `connection_init` | closes with 4429 (legacy: a `connection_error`) |
//! | a message that is not one of the protocol's | closes with 1002 |
//!
//! Results ready together are written with one flush.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_graphql::http::{ClientMessage, WebSocketProtocols};
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures::stream::BoxStream;
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};

use crate::graphql::fanout::{Fanout, Payload, SocketSession};
use crate::state::Stopping;

/// Most results written with one flush, and most bytes.
const BATCH_MESSAGES: usize = 32;
const BATCH_BYTES: usize = 64 * 1024;

/// The operations running on one socket, by id.
#[derive(Default)]
struct Operations {
    running: Vec<(String, BoxStream<'static, Payload>)>,
    /// Where the next poll starts, so that no operation starves the others.
    next: usize,
}

impl Operations {
    /// Runs `stream` as `id`, replacing (and so ending) one already
    /// running under that id.
    fn insert(&mut self, id: String, stream: BoxStream<'static, Payload>) {
        match self.running.iter_mut().find(|(running, _)| *running == id) {
            Some((_, old)) => *old = stream,
            None => self.running.push((id, stream)),
        }
    }

    /// Ends `id`; whether it was running.
    fn remove(&mut self, id: &str) -> bool {
        let before = self.running.len();
        self.running.retain(|(running, _)| running != id);
        self.running.len() < before
    }

    /// The next result of any operation (`Some`), or the end of one
    /// (`None`, and it is removed). Pending while none has either.
    async fn next(&mut self) -> (String, Option<Payload>) {
        poll_fn(|cx| {
            let count = self.running.len();
            for step in 0..count {
                let index = (self.next + step) % count;
                match self.running[index].1.poll_next_unpin(cx) {
                    Poll::Ready(Some(payload)) => {
                        self.next = (index + 1) % count;
                        return Poll::Ready((self.running[index].0.clone(), Some(payload)));
                    }
                    Poll::Ready(None) => {
                        let (id, _) = self.running.remove(index);
                        self.next = 0;
                        return Poll::Ready((id, None));
                    }
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }
}

fn text(frame: String) -> Message {
    Message::Text(frame.into())
}

/// `{"type":"next","id":…,"payload":…}` (`data` on the legacy protocol).
fn result_frame(kind: WebSocketProtocols, id: &str, payload: &str) -> String {
    let kind = match kind {
        WebSocketProtocols::SubscriptionsTransportWS => "data",
        WebSocketProtocols::GraphQLWS => "next",
    };
    let id = json_string(id);
    let parts = [
        "{\"type\":\"",
        kind,
        "\",\"id\":",
        &id,
        ",\"payload\":",
        payload,
        "}",
    ];
    // Exactly as long as it needs to be: the frame then becomes the
    // message's bytes without a second allocation.
    let mut frame = String::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        frame.push_str(part);
    }
    frame
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// `{"type":"complete","id":…}`.
fn complete_frame(id: &str) -> String {
    format!("{{\"type\":\"complete\",\"id\":{}}}", json_string(id))
}

/// What one turn of the loop got.
enum Step {
    Stop,
    Client(Option<Result<Message, axum::Error>>),
    Out(String, Option<Payload>),
}

/// Serves the socket until the client leaves, ends the connection or
/// breaks the protocol, or the hub starts shutting down (then it closes
/// with 1001).
pub(super) async fn serve(
    mut socket: WebSocket,
    kind: WebSocketProtocols,
    session: SocketSession,
    fanout: Arc<Fanout>,
    stopping: Stopping,
) {
    if socket
        .send(text(r#"{"type":"connection_ack"}"#.to_owned()))
        .await
        .is_err()
    {
        return;
    }
    let stopped = stopping.stopped();
    tokio::pin!(stopped);
    let mut operations = Operations::default();
    loop {
        let step = tokio::select! {
            biased;
            () = &mut stopped => Step::Stop,
            message = socket.recv() => Step::Client(message),
            (id, payload) = operations.next() => Step::Out(id, payload),
        };
        let sent = match step {
            Step::Stop => {
                let close = Message::Close(Some(CloseFrame {
                    code: close_code::AWAY,
                    reason: "the hub is shutting down".into(),
                }));
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(close)).await;
                return;
            }
            Step::Client(None | Some(Err(_))) => return,
            Step::Client(Some(Ok(message))) => {
                let bytes = match &message {
                    Message::Text(text) => text.as_bytes(),
                    Message::Binary(bytes) => bytes,
                    _ => continue,
                };
                match answer(
                    ClientMessage::from_bytes(bytes),
                    &mut operations,
                    &session,
                    &fanout,
                    kind,
                ) {
                    Answer::Nothing => continue,
                    Answer::Send(frame) => socket.send(text(frame)).await,
                    Answer::End(Some(last)) => {
                        let _ = socket.send(last).await;
                        return;
                    }
                    Answer::End(None) => return,
                }
            }
            Step::Out(id, first) => {
                write_ready(&mut socket, &mut operations, kind, id, first).await
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// What to do about a client message.
enum Answer {
    Nothing,
    Send(String),
    /// Send this (if anything), then end the socket.
    End(Option<Message>),
}

fn answer(
    message: serde_json::Result<ClientMessage>,
    operations: &mut Operations,
    session: &SocketSession,
    fanout: &Fanout,
    kind: WebSocketProtocols,
) -> Answer {
    let message = match message {
        Ok(message) => message,
        Err(err) => {
            return Answer::End(Some(Message::Close(Some(CloseFrame {
                code: 1002,
                reason: err.to_string().into(),
            }))))
        }
    };
    match message {
        ClientMessage::ConnectionInit { .. } => {
            let reason = "Too many initialisation requests.";
            Answer::End(Some(match kind {
                WebSocketProtocols::SubscriptionsTransportWS => text(format!(
                    "{{\"type\":\"connection_error\",\"payload\":{{\"message\":{}}}}}",
                    json_string(reason)
                )),
                WebSocketProtocols::GraphQLWS => Message::Close(Some(CloseFrame {
                    code: 4429,
                    reason: reason.into(),
                })),
            }))
        }
        ClientMessage::Start { id, payload } => {
            let stream = fanout.start(payload, session);
            operations.insert(id, stream);
            Answer::Nothing
        }
        ClientMessage::Stop { id } => {
            if operations.remove(&id) {
                Answer::Send(complete_frame(&id))
            } else {
                Answer::Nothing
            }
        }
        ClientMessage::ConnectionTerminate => Answer::End(None),
        ClientMessage::Ping { .. } => Answer::Send(r#"{"type":"pong"}"#.to_owned()),
        ClientMessage::Pong { .. } => Answer::Nothing,
    }
}

/// Writes `first` (a result of `id`, or its end) and whatever else is
/// ready now, up to a batch, with one flush.
async fn write_ready(
    socket: &mut WebSocket,
    operations: &mut Operations,
    kind: WebSocketProtocols,
    id: String,
    first: Option<Payload>,
) -> Result<(), axum::Error> {
    let mut next = Some((id, first));
    let mut written = 0;
    let mut bytes = 0;
    while let Some((id, payload)) = next.take() {
        let frame = match payload {
            Some(payload) => result_frame(kind, &id, payload.as_str()),
            None => complete_frame(&id),
        };
        written += 1;
        bytes += frame.len();
        socket.feed(text(frame)).await?;
        if written < BATCH_MESSAGES && bytes < BATCH_BYTES {
            next = operations.next().now_or_never();
        }
    }
    socket.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_framed_as_each_protocol_names_them() {
        let payload = r#"{"data":{"a":1}}"#;
        let framed: serde_json::Value = serde_json::from_str(&result_frame(
            WebSocketProtocols::GraphQLWS,
            "sub \"1\"",
            payload,
        ))
        .expect("JSON");
        assert_eq!(
            framed,
            serde_json::json!({"type": "next", "id": "sub \"1\"", "payload": {"data": {"a": 1}}})
        );
        let legacy = result_frame(WebSocketProtocols::SubscriptionsTransportWS, "1", payload);
        assert_eq!(
            legacy,
            r#"{"type":"data","id":"1","payload":{"data":{"a":1}}}"#
        );
        assert_eq!(complete_frame("1"), r#"{"type":"complete","id":"1"}"#);
    }
}
