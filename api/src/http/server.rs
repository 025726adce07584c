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

/// Every open connection, and the ones that may be closed to make room.
pub struct Connections {
    max: usize,
    /// How long a request waits on its client before it counts as stuck.
    stuck_after: Duration,
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
    /// Room for `max` connections (see [`connection_cap`]).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            stuck_after: STUCK,
            inner: Mutex::default(),
        }
    }

    /// A slot for a new connection: a free one, or the slot of the oldest
    /// connection without a request in progress, which is closed; `None`
    /// when every slot is busy.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut registry = self.inner.lock().expect("connections lock");
        if registry.open >= self.max && !evict(&mut registry, self.stuck_after) {
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
        evict(
            &mut self.inner.lock().expect("connections lock"),
            self.stuck_after,
        );
    }

    /// Connections open, WebSockets included.
    pub fn open(&self) -> usize {
        self.inner.lock().expect("connections lock").open
    }

    /// Connections hyper still serves.
    fn serving(&self) -> usize {
        self.inner.lock().expect("connections lock").serving.len()
    }
}

/// Closes the oldest served connection without a request in progress, or
/// failing that the oldest stuck on its client; returns whether there was
/// one. Its slot is handed over at once (the connection's task closes it on
/// its next poll).
fn evict(registry: &mut Registry, stuck_after: Duration) -> bool {
    let movable = |state: &&Arc<ConnectionState>| !state.upgrading.load(Ordering::Acquire);
    let victim = registry
        .serving
        .iter()
        .filter(|(_, state)| movable(state))
        .find(|(_, state)| state.in_flight.load(Ordering::Acquire) == 0)
        .or_else(|| {
            registry
                .serving
                .iter()
                .filter(|(_, state)| movable(state))
                .find(|(_, state)| state.stuck_for().is_some_and(|stuck| stuck >= stuck_after))
        })
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
    /// Since when a request body has been awaited (ms after `born`, plus
    /// one; zero when none is).
    receiving_since: AtomicU64,
    /// Since when a write has waited for the client to read (ms after
    /// `born`, plus one; zero when none has).
    write_blocked_since: AtomicU64,
    /// It answered 101 and is becoming a WebSocket.
    upgrading: AtomicBool,
    /// Its current request's body has not been read to its end.
    unread_body: AtomicBool,
    /// It was answered before its body was read: drain it before closing.
    linger: AtomicBool,
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
            receiving_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            upgrading: AtomicBool::new(false),
            unread_body: AtomicBool::new(false),
            linger: AtomicBool::new(false),
            born: Instant::now(),
            evicted: Notify::new(),
            released: AtomicBool::new(false),
        }
    }

    /// Milliseconds since `born`.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn touch(&self) {
        self.last_active_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Marks `since` as started now, unless it already is.
    fn start(&self, since: &AtomicU64) {
        let _ = since.compare_exchange(0, self.now_ms() + 1, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// How long ago `since` was started, if it is.
    fn elapsed(&self, since: &AtomicU64) -> Option<Duration> {
        match since.load(Ordering::Acquire) {
            0 => None,
            started => Some(Duration::from_millis(
                self.now_ms().saturating_sub(started - 1),
            )),
        }
    }

    /// How long a write has waited for the client to read, if one has.
    fn write_blocked_for(&self) -> Option<Duration> {
        self.elapsed(&self.write_blocked_since)
    }

    /// How long its request in progress has waited on its client, if it
    /// has.
    fn stuck_for(&self) -> Option<Duration> {
        let body = self.elapsed(&self.receiving_since);
        self.write_blocked_for().max(body)
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

/// The client's stream, noting when bytes arrive (for the idle timeout),
/// holding the connection's slot until it closes, also after an upgrade to
/// a WebSocket, and repairing raw query strings (`QueryRepair`).
struct TrackedStream {
    /// Taken only when it is dropped, to linger.
    inner: Option<TcpStream>,
    slot: Arc<HeldSlot>,
    repair: QueryRepair,
    /// Repaired bytes not yet taken by hyper, from `repaired_at` on.
    repaired: Vec<u8>,
    repaired_at: usize,
}

impl TrackedStream {
    fn new(inner: TcpStream, slot: Arc<HeldSlot>) -> Self {
        Self {
            inner: Some(inner),
            slot,
            repair: QueryRepair::default(),
            repaired: Vec::new(),
            repaired_at: 0,
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            self.inner
                .as_mut()
                .expect("the stream is taken only on drop"),
        )
    }

    /// Moves repaired bytes into `buf`; whether there were any.
    fn take_repaired(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let waiting = &self.repaired[self.repaired_at..];
        if waiting.is_empty() {
            return false;
        }
        let n = waiting.len().min(buf.remaining());
        buf.put_slice(&waiting[..n]);
        self.repaired_at += n;
        if self.repaired_at == self.repaired.len() {
            self.repaired.clear();
            self.repaired_at = 0;
        }
        true
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.take_repaired(buf) {
            return Poll::Ready(Ok(()));
        }
        if this.repair.is_pass_through() {
            let before = buf.filled().len();
            let polled = this.stream().poll_read(cx, buf);
            if buf.filled().len() > before {
                this.slot.state.touch();
            }
            return polled;
        }
        let mut raw = [0_u8; 8 * 1024];
        let mut raw = ReadBuf::new(&mut raw[..buf.remaining().min(8 * 1024)]);
        let polled = this.stream().poll_read(cx, &mut raw);
        if !raw.filled().is_empty() {
            this.slot.state.touch();
            this.repair.push(raw.filled(), &mut this.repaired);
            this.take_repaired(buf);
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
        let polled = self.stream().poll_write(cx, buf);
        self.note_write(polled.is_pending());
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = self.stream().poll_write_vectored(cx, bufs);
        self.note_write(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(TcpStream::is_write_vectored)
    }
}

impl TrackedStream {
    /// Notes whether the client is keeping a write waiting.
    fn note_write(&self, blocked: bool) {
        let state = &self.slot.state;
        if blocked {
            state.start(&state.write_blocked_since);
        } else {
            state.write_blocked_since.store(0, Ordering::Release);
        }
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if !self.slot.state.linger.load(Ordering::Acquire) {
            return;
        }
        let (Some(stream), Ok(runtime)) =
            (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        if LINGERING.fetch_add(1, Ordering::AcqRel) >= MAX_LINGERING {
            LINGERING.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        runtime.spawn(async move {
            linger(stream).await;
            LINGERING.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Connections draining an unread body right now.
static LINGERING: AtomicUsize = AtomicUsize::new(0);
/// Most connections drained at once; past that, they close at once.
const MAX_LINGERING: usize = 64;
/// Most bytes drained from one connection.
const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// Longest a connection is drained.
const LINGER_TIME: Duration = Duration::from_secs(5);

/// Closes a connection whose client may still be sending a body it was
/// answered before: says it is done writing, then reads and drops what
/// comes until the client closes too (or [`LINGER_BYTES`] or
/// [`LINGER_TIME`] pass). Closing with unread bytes would make the kernel
/// reset the connection, and a client still sending would lose the answer
/// to the reset.
async fn linger(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt as _;
    let _ = stream.shutdown().await;
    let mut drained = 0;
    let mut buf = vec![0_u8; 64 * 1024];
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
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

/// The WebSockets and SSE streams open, and how many may be: a share of
/// the connection slots, so sockets cannot take every slot requests need.
#[derive(Debug)]
pub struct SocketSlots {
    max: usize,
    open: AtomicUsize,
}

impl SocketSlots {
    /// Three quarters of `connections` (at least one).
    pub fn share_of(connections: usize) -> Self {
        Self {
            max: (connections / 4 * 3).max(1),
            open: AtomicUsize::new(0),
        }
    }

    /// A slot for one more socket, or `None` when as many are open as may
    /// be.
    pub fn take(self: &Arc<Self>) -> Option<SocketSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .ok()?;
        Some(SocketSlot(self.clone()))
    }

    /// Sockets open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Most sockets open at once.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// One socket's place, held until the socket closes.
#[derive(Debug)]
pub struct SocketSlot(Arc<SocketSlots>);

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
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
/// passed since its headers arrived, and marks its connection as waiting on
/// its client until it has arrived.
pub struct DeadlineBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    connection: Arc<ConnectionState>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration, connection: Arc<ConnectionState>) -> Self {
        use http_body::Body as _;
        if !inner.is_end_stream() {
            connection.start(&connection.receiving_since);
            connection.unread_body.store(true, Ordering::Release);
        }
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            connection,
        }
    }

    fn received(&self) {
        self.connection.receiving_since.store(0, Ordering::Release);
    }
}

impl Drop for DeadlineBody {
    fn drop(&mut self) {
        self.received();
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
            if frame.is_none() || self.inner.is_end_stream() {
                self.received();
                self.connection.unread_body.store(false, Ordering::Release);
            }
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
    fn a_busy_server_closes_a_connection_stuck_on_its_client_but_never_an_upgrade() {
        let cases = [
            (true, STUCK, false),
            (true, Duration::ZERO, true),
            (false, Duration::ZERO, false),
        ];
        for (blocked, stuck_after, evicts) in cases {
            let connections = Arc::new(Connections {
                max: 2,
                stuck_after,
                inner: Mutex::default(),
            });
            let upgrading = connections.admit().expect("a free slot");
            upgrading
                .held
                .state
                .upgrading
                .store(true, Ordering::Release);
            let stuck = connections.admit().expect("a free slot");
            let _busy = InFlight::begin(&stuck.held.state);
            let state = &stuck.held.state;
            if blocked {
                state.start(&state.write_blocked_since);
            }
            assert_eq!(
                connections.admit().is_some(),
                evicts,
                "blocked {blocked}, stuck after {stuck_after:?}: the connection is closed {evicts}"
            );
            assert_eq!(state.released.load(Ordering::Acquire), evicts);
            assert!(!upgrading.held.state.released.load(Ordering::Acquire));
        }
    }

    #[test]
    fn sockets_take_at_most_three_quarters_of_the_slots() {
        let sockets = Arc::new(SocketSlots::share_of(8));
        let held: Vec<_> = (0..6).map_while(|_| sockets.take()).collect();
        assert_eq!(held.len(), 6);
        assert!(sockets.take().is_none(), "a seventh socket is refused");
        drop(held);
        assert_eq!(sockets.open(), 0);
        assert!(sockets.take().is_some(), "closed sockets free their slots");
        assert_eq!(SocketSlots::share_of(1).max(), 1);
    }

    #[test]
    fn a_timed_out_body_is_recognised_through_its_wrappers() {
        let wrapped = axum::Error::new(BodyTimedOut(Duration::from_secs(1)));
        assert!(is_body_timeout(&wrapped));
        let other = axum::Error::new(io::Error::other("reset"));
        assert!(!is_body_timeout(&other));
    }
}
