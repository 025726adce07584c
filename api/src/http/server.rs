//! The HTTP server: hyper under the router, with the bounds a public
//! listener needs.
//!
//! - **Header timeout:** a request's headers must arrive within
//!   [`ServerLimits::header_timeout`] of the connection's start or of the
//!   end of the previous response (hyper's own timer).
//! - **Body timeout:** its body within [`ServerLimits::body_timeout`] of its
//!   headers ([`DeadlineBody`]); the handler then answers 408.
//! - **Idle timeout:** a keep-alive connection that receives nothing for
//!   [`ServerLimits::idle_timeout`] between requests is closed.
//! - **Connection cap:** at most [`ServerLimits::max_connections`] open
//!   connections, WebSockets included (they keep their slot until the socket
//!   closes). A connection past the cap closes the oldest connection that has
//!   no request in progress (one trickling its headers, or idle between
//!   requests); when every connection is busy, the newcomer gets a 503 and
//!   is closed. So a flood of half-open connections cannot keep a client
//!   that sends a whole request (a `/health` probe) out.
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
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt as _;

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

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in progress finish (for up to 10 s).
///
/// # Errors
/// When the listener fails for a reason other than a lack of descriptors
/// or a connection aborted before it was accepted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let max_connections = connection_cap(limits.max_connections);
    let connections = Arc::new(Connections::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
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
        let _ = stream.set_nodelay(true);
        let Some(slot) = connections.admit() else {
            tokio::spawn(shed(stream));
            continue;
        };
        let io = TokioIo::new(TrackedStream {
            inner: stream,
            slot: slot.held.clone(),
        });
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
    builder: &auto::Builder<TokioExecutor>,
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
            let request =
                request.map(|body| Body::new(DeadlineBody::new(body, limits.body_timeout)));
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await.unwrap_or_else(|n| match n {});
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(HeldBody {
                        inner: body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let idle_check = tokio::time::sleep(limits.idle_timeout.min(Duration::from_secs(1)));
        tokio::select! {
            _ = connection.as_mut() => break,
            () = state.evicted.notified() => {
                tracing::debug!("closed an idle connection to make room for a new one");
                break;
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = idle_check, if !closing => {
                if state.idle_for() >= limits.idle_timeout {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
    // A connection upgraded to a WebSocket keeps its slot in its stream.
    drop(slot);
}

/// Caps `wanted` below the process's open-file limit, after raising that
/// limit to its hard maximum.
fn connection_cap(wanted: usize) -> usize {
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

/// Every open connection, and the ones that may be closed to make room.
struct Connections {
    max: usize,
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    /// Open connections, WebSockets included.
    open: usize,
    /// Connections hyper still serves (not upgraded), oldest first.
    serving: BTreeMap<u64, Arc<ConnectionState>>,
}

impl Connections {
    fn new(max: usize) -> Self {
        Self {
            max,
            inner: Mutex::default(),
        }
    }

    /// A slot for a new connection: a free one, or the slot of the oldest
    /// connection without a request in progress, which is closed; `None`
    /// when every slot is busy.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut registry = self.inner.lock().expect("connections lock");
        if registry.open >= self.max && !evict(&mut registry) {
            return None;
        }
        registry.open += 1;
        registry.next_id += 1;
        let id = registry.next_id;
        let state = Arc::new(ConnectionState::new());
        registry.serving.insert(id, state.clone());
        Some(Slot {
            id,
            held: Arc::new(HeldSlot {
                state,
                connections: self.clone(),
            }),
        })
    }

    fn evict_oldest_idle(&self) {
        evict(&mut self.inner.lock().expect("connections lock"));
    }

    /// Connections hyper still serves.
    fn serving(&self) -> usize {
        self.inner.lock().expect("connections lock").serving.len()
    }
}

/// Closes the oldest served connection without a request in progress;
/// returns whether there was one. Its slot is handed over at once (the
/// connection's task closes it on its next poll).
fn evict(registry: &mut Registry) -> bool {
    let victim = registry
        .serving
        .iter()
        .find(|(_, state)| state.in_flight.load(Ordering::Acquire) == 0)
        .map(|(id, _)| *id);
    let Some(id) = victim else {
        return false;
    };
    if let Some(state) = registry.serving.remove(&id) {
        if !state.released.swap(true, Ordering::AcqRel) {
            registry.open -= 1;
        }
        state.evicted.notify_one();
    }
    true
}

/// What the server knows of one connection.
struct ConnectionState {
    /// Requests whose response has not been sent in full.
    in_flight: AtomicUsize,
    /// When it last received bytes or finished a response (ms after `born`).
    last_active_ms: AtomicU64,
    born: Instant,
    /// Closes it (eviction).
    evicted: Notify,
    /// Its slot was handed to another connection.
    released: AtomicBool,
}

impl ConnectionState {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            born: Instant::now(),
            evicted: Notify::new(),
            released: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(now, Ordering::Relaxed);
    }

    /// How long it has had no request in progress and received nothing.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
}

/// A connection's place under the cap, as the connection's task holds it:
/// the connection leaves the served list when the task ends.
struct Slot {
    id: u64,
    held: Arc<HeldSlot>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let connections = &self.held.connections;
        let mut registry = connections.inner.lock().expect("connections lock");
        registry.serving.remove(&self.id);
    }
}

/// The slot itself, held by the connection's task and by its stream (which
/// outlives the task when the connection becomes a WebSocket): freed when
/// both are gone, unless an eviction already handed it over.
struct HeldSlot {
    state: Arc<ConnectionState>,
    connections: Arc<Connections>,
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        if !self.state.released.swap(true, Ordering::AcqRel) {
            self.connections
                .inner
                .lock()
                .expect("connections lock")
                .open -= 1;
        }
    }
}

/// The client's stream, noting when bytes arrive (for the idle timeout)
/// and holding the connection's slot until it closes, also after an
/// upgrade to a WebSocket.
struct TrackedStream {
    inner: TcpStream,
    slot: Arc<HeldSlot>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.slot.state.touch();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// One request in progress on a connection, until its response body is
/// sent (or dropped).
struct InFlight(Arc<ConnectionState>);

impl InFlight {
    fn begin(state: &Arc<ConnectionState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress.
struct HeldBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a request body gives once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// Whether `err` (a body extractor's rejection, or anything whose sources
/// lead to one) was caused by [`BodyTimedOut`].
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<BodyTimedOut>() {
            return true;
        }
        current = err.source();
    }
    false
}

/// A request body that fails with [`BodyTimedOut`] once `timeout` has
/// passed since its headers arrived.
pub struct DeadlineBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(axum::Error::new)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_server_closes_its_oldest_idle_connection_for_a_newcomer() {
        let connections = Arc::new(Connections::new(2));
        let first = connections.admit().expect("a free slot");
        let second = connections.admit().expect("a free slot");
        let _busy = InFlight::begin(&second.held.state);
        let third = connections.admit().expect("the idle first one makes room");
        assert!(
            first.held.state.released.load(Ordering::Acquire),
            "the first was evicted"
        );
        let _busy_too = InFlight::begin(&third.held.state);
        assert!(connections.admit().is_none(), "every connection is busy");
        drop(first);
        assert!(
            connections.admit().is_none(),
            "an evicted slot is not freed twice"
        );
        drop(second);
        assert!(
            connections.admit().is_some(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn a_timed_out_body_is_recognised_through_its_wrappers() {
        let wrapped = axum::Error::new(BodyTimedOut(Duration::from_secs(1)));
        assert!(is_body_timeout(&wrapped));
        let other = axum::Error::new(io::Error::other("reset"));
        assert!(!is_body_timeout(&other));
    }
}
