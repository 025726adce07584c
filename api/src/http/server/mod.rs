//! The HTTP server: hyper's HTTP/1.1 under the router, with the bounds a
//! public listener needs. (Browsers speak HTTP/2 only over TLS; a TLS proxy
//! in front of the hub speaks HTTP/1.1 to it.)
//!
//! - **Header timeout:** a request's headers must arrive within
//!   [`ServerLimits::header_timeout`] of the connection's start or of the
//!   end of the previous response (hyper's own timer).
//! - **Body timeout:** its body within [`ServerLimits::body_timeout`] of its
//!   headers ([`DeadlineBody`]); the handler then answers 408.
//! - **Idle timeout:** a keep-alive connection that receives nothing for
//!   [`ServerLimits::idle_timeout`] between requests is closed.
//! - **Unread bodies:** a request answered before its body was read to
//!   the end (a refusal) is answered with `Connection: close`, and the
//!   connection closes: the rest of the body cannot be told from a next
//!   request. What the client still sends is read and dropped first (up to
//!   16 MiB or 5 s, at most 64 such connections at once), so a client that
//!   writes its whole body before reading gets the answer (a 413), not a
//!   connection reset.
//! - **Raw query strings:** `"`, `<` and `>` sent unencoded in a query
//!   (`?subject=hub.>`, as curl sends it) are percent-encoded before hyper
//!   parses the request line (`query_repair`).
//! - **Unread responses:** a connection whose client has taken none of its
//!   response for [`ServerLimits::body_timeout`] is closed.
//! - **Dead peers:** TCP keep-alive probes (after 60 s of silence, every
//!   10 s, 5 times) close connections whose peer vanished, WebSockets
//!   included.
//! - **Connection cap:** at most [`ServerLimits::max_connections`] open
//!   connections, WebSockets included (they keep their slot until the socket
//!   closes). A connection past the cap closes the oldest connection that has
//!   no request in progress (one trickling its headers, or idle between
//!   requests); failing that, the oldest one stuck for 2 s or more (its
//!   client sending a body that does not come, or not reading its
//!   response). When every connection is busy, the newcomer gets a 503 and
//!   is closed. So a flood of half-open or unread connections cannot keep a
//!   client that sends a whole request (a `/health` probe) out. A connection
//!   being upgraded to a WebSocket is never closed to make room, nor one
//!   streaming Server-Sent Events to a client that reads them (its request
//!   stays in progress while the stream is open, also between keepalives).
//! - **Sockets:** WebSockets and SSE streams may take at most three
//!   quarters of the connection slots ([`SocketSlots`]); one past that is
//!   answered 503. So long-lived sockets cannot take the slots requests
//!   need.
//!
//! The process's open-file limit is raised to its hard limit at start, and
//! the cap is kept below it, so accepting never fails for lack of
//! descriptors while the database pool and NATS still have theirs.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt as _;

use super::query_repair::QueryRepair;

mod bodies;
mod connections;
mod stream;

pub use bodies::{is_body_timeout, BodyTimedOut, DeadlineBody};
use bodies::{HeldBody, InFlight};
use connections::{ConnectionState, HeldSlot, Slot};
pub use connections::{Connections, SocketSlot, SocketSlots};
use stream::TrackedStream;

/// Bounds on connections and requests.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest wait for a request's headers.
    pub header_timeout: Duration,
    /// Longest wait for a request's body, once its headers arrived.
    pub body_timeout: Duration,
    /// Longest a keep-alive connection may receive nothing between requests.
    pub idle_timeout: Duration,
}

/// Descriptors kept free for everything but client connections: the
/// database pool, the feed runners' connections, NATS, files.
const RESERVED_DESCRIPTORS: u64 = 128;

/// How long a shed connection's 503 may take to write.
const SHED_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a request must have waited on its client (for body bytes, or
/// for the client to read its response) before its connection may be
/// closed to make room for a newcomer.
const STUCK: Duration = Duration::from_secs(2);

/// TCP keep-alive: silence before the first probe, time between probes,
/// probes unanswered before the connection is dropped.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 5;

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in progress finish (for up to 10 s). At most `connections`'
/// capacity is open at once.
///
/// # Errors
/// When the listener fails for a reason other than a lack of descriptors
/// or a connection aborted before it was accepted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    connections: Arc<Connections>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) if is_out_of_descriptors(&err) => {
                // Make room and try again shortly rather than spin.
                connections.evict_oldest_idle();
                tracing::warn!(error = %err, "accept failed: out of file descriptors");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => return Err(err),
        };
        tune(&stream);
        let Some(slot) = connections.admit() else {
            tokio::spawn(shed(stream));
            continue;
        };
        let io = TokioIo::new(TrackedStream::new(stream, slot.held.clone()));
        let router = router.clone();
        let builder = builder.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(&builder, io, router, slot, limits, stop).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while connections.serving() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// One connection until it ends, is evicted, idles out or the server stops.
async fn serve_connection(
    builder: &http1::Builder,
    io: TokioIo<TrackedStream>,
    router: Router,
    slot: Slot,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
) {
    let state = slot.held.state.clone();
    let service = {
        let state = state.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = InFlight::begin(&state);
            let request = request
                .map(|body| Body::new(DeadlineBody::new(body, limits.body_timeout, state.clone())));
            let router = router.clone();
            let state = state.clone();
            async move {
                let response = router.oneshot(request).await.unwrap_or_else(|n| match n {});
                let mut response = response;
                if response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                    // It becomes a WebSocket once the 101 is written: never
                    // close it to make room meanwhile.
                    state.upgrading.store(true, Ordering::Release);
                } else if state.unread_body.swap(false, Ordering::AcqRel) {
                    // Answered without reading the whole body (a refusal):
                    // the rest cannot be told from a next request, so the
                    // connection closes, and the client is told not to
                    // reuse it. What it still sends is read and dropped
                    // before the socket closes, so the answer is not lost
                    // to a reset.
                    state.linger.store(true, Ordering::Release);
                    response.headers_mut().insert(
                        hyper::header::CONNECTION,
                        hyper::header::HeaderValue::from_static("close"),
                    );
                }
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(HeldBody {
                        inner: body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let mut closing = false;
    let tick = limits.idle_timeout.min(Duration::from_secs(1));
    loop {
        tokio::select! {
            biased;
            () = state.evicted.notified() => {
                tracing::debug!("closed a connection to make room for a new one");
                break;
            }
            _ = connection.as_mut() => break,
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(tick) => {
                if state.write_blocked_for().is_some_and(|blocked| blocked >= limits.body_timeout) {
                    tracing::debug!("closed a connection whose client does not read its response");
                    break;
                }
                if !closing && state.idle_for() >= limits.idle_timeout {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
    // A connection upgraded to a WebSocket keeps its slot in its stream.
    drop(slot);
}

/// Low latency for small answers, and keep-alive probes for dead peers.
fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// Caps `wanted` below the process's open-file limit, after raising that
/// limit to its hard maximum: the most connections the server will hold.
pub fn connection_cap(wanted: usize) -> usize {
    let limit = raise_descriptor_limit();
    let room = usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX);
    let cap = wanted.min(room).max(1);
    if cap < wanted {
        tracing::warn!(
            wanted,
            cap,
            open_file_limit = limit,
            "HUB_MAX_CONNECTIONS is above what the open-file limit allows; serving at most {cap} connections"
        );
    }
    cap
}

/// Raises the soft open-file limit to the hard one; returns the limit now
/// in force.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

fn is_out_of_descriptors(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Errors of one connection that was never accepted: go on.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || matches!(err.raw_os_error(), Some(libc::ENOBUFS | libc::ENOMEM))
}

/// Answers a connection past the cap with 503 and closes it.
async fn shed(mut stream: TcpStream) {
    const BODY: &str = r#"{"error":{"code":"UNAVAILABLE","message":"the hub has as many connections open as it allows; try again shortly"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(SHED_WRITE_TIMEOUT, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
