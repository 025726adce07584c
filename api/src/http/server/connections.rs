//! Connection slots: every open connection under the cap, the ones that
//! may be closed to make room, and the share WebSockets and SSE streams
//! may hold.

use super::*;

/// Every open connection, and the ones that may be closed to make room.
pub struct Connections {
    max: usize,
    /// How long a request waits on its client before it counts as stuck.
    stuck_after: Duration,
    inner: Mutex<Registry>,
}

#[derive(Default)]
pub(super) struct Registry {
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
    pub(super) fn admit(self: &Arc<Self>) -> Option<Slot> {
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

    pub(super) fn evict_oldest_idle(&self) {
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
    pub(super) fn serving(&self) -> usize {
        self.inner.lock().expect("connections lock").serving.len()
    }
}

/// Closes the oldest served connection without a request in progress, or
/// failing that the oldest stuck on its client; returns whether there was
/// one. Its slot is handed over at once (the connection's task closes it on
/// its next poll).
pub(super) fn evict(registry: &mut Registry, stuck_after: Duration) -> bool {
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
pub(super) struct ConnectionState {
    /// Requests whose response has not been sent in full.
    pub(super) in_flight: AtomicUsize,
    /// When it last received bytes or finished a response (ms after `born`).
    pub(super) last_active_ms: AtomicU64,
    /// Since when a request body has been awaited (ms after `born`, plus
    /// one; zero when none is).
    pub(super) receiving_since: AtomicU64,
    /// Since when a write has waited for the client to read (ms after
    /// `born`, plus one; zero when none has).
    pub(super) write_blocked_since: AtomicU64,
    /// It answered 101 and is becoming a WebSocket.
    pub(super) upgrading: AtomicBool,
    /// Its current request's body has not been read to its end.
    pub(super) unread_body: AtomicBool,
    /// It was answered before its body was read: drain it before closing.
    pub(super) linger: AtomicBool,
    pub(super) born: Instant,
    /// Closes it (eviction).
    pub(super) evicted: Notify,
    /// Its slot was handed to another connection.
    pub(super) released: AtomicBool,
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

    pub(super) fn touch(&self) {
        self.last_active_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Marks `since` as started now, unless it already is.
    pub(super) fn start(&self, since: &AtomicU64) {
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
    pub(super) fn write_blocked_for(&self) -> Option<Duration> {
        self.elapsed(&self.write_blocked_since)
    }

    /// How long its request in progress has waited on its client, if it
    /// has.
    fn stuck_for(&self) -> Option<Duration> {
        let body = self.elapsed(&self.receiving_since);
        self.write_blocked_for().max(body)
    }

    /// How long it has had no request in progress and received nothing.
    pub(super) fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
}

/// A connection's place under the cap, as the connection's task holds it:
/// the connection leaves the served list when the task ends.
pub(super) struct Slot {
    pub(super) id: u64,
    pub(super) held: Arc<HeldSlot>,
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
pub(super) struct HeldSlot {
    pub(super) state: Arc<ConnectionState>,
    pub(super) connections: Arc<Connections>,
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
