//! Subscriptions counted per socket and per process while they run.

use super::*;

/// The subscriptions open in this process, shared by every socket.
#[derive(Debug, Default)]
pub struct OpenSubscriptions(AtomicUsize);

impl OpenSubscriptions {
    /// How many are open now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The subscriptions open on one WebSocket; put into the socket's
/// connection data, where the door finds it.
#[derive(Debug, Default, Clone)]
pub struct SocketSubscriptions(Arc<AtomicUsize>);

/// In an operation's data: its place is held by whoever runs it (the
/// GraphQL socket), so the door does not count it again.
#[derive(Debug, Default, Clone, Copy)]
pub struct SlotHeld;

/// One open subscription, counted in the process and on its socket until
/// dropped.
pub struct SubscriptionSlot {
    open: Arc<OpenSubscriptions>,
    socket: Option<SocketSubscriptions>,
}

impl SubscriptionSlot {
    /// Takes a place in the process and, with `socket`, on that socket.
    ///
    /// # Errors
    /// TOO_MANY_SUBSCRIPTIONS when either is full (nothing is taken then).
    pub fn take(
        open: &Arc<OpenSubscriptions>,
        socket: Option<&SocketSubscriptions>,
        limits: &DoorLimits,
    ) -> Result<Self, ServerError> {
        if let Some(socket) = socket {
            if !reserve(&socket.0, limits.max_subscriptions_per_socket) {
                return Err(refusal(
                    codes::TOO_MANY_SUBSCRIPTIONS,
                    format!(
                        "this socket already has {} subscriptions open, the most allowed; \
                         complete one first, or open another socket",
                        limits.max_subscriptions_per_socket
                    ),
                ));
            }
        }
        if !reserve(&open.0, limits.max_subscriptions) {
            if let Some(socket) = socket {
                socket.0.fetch_sub(1, Ordering::Relaxed);
            }
            return Err(refusal(
                codes::TOO_MANY_SUBSCRIPTIONS,
                format!(
                    "the hub already serves {} subscriptions, the most it allows; try again later",
                    limits.max_subscriptions
                ),
            ));
        }
        Ok(Self {
            open: open.clone(),
            socket: socket.cloned(),
        })
    }
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        self.open.0.fetch_sub(1, Ordering::Relaxed);
        if let Some(socket) = &self.socket {
            socket.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Adds one to `counter` unless it is at `max`.
pub(super) fn reserve(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_released_when_dropped() {
        let open = Arc::new(OpenSubscriptions::default());
        let socket = SocketSubscriptions::default();
        let limits = DoorLimits {
            max_fields: 1,
            max_depth: 1,
            max_complexity: 1,
            query_timeout: Duration::from_secs(1),
            max_subscriptions_per_socket: 2,
            max_subscriptions: 3,
        };
        let a = SubscriptionSlot::take(&open, Some(&socket), &limits).unwrap();
        let b = SubscriptionSlot::take(&open, Some(&socket), &limits).unwrap();
        assert!(SubscriptionSlot::take(&open, Some(&socket), &limits).is_err());
        let other = SocketSubscriptions::default();
        let c = SubscriptionSlot::take(&open, Some(&other), &limits).unwrap();
        assert!(
            SubscriptionSlot::take(&open, Some(&other), &limits).is_err(),
            "process full"
        );
        assert_eq!(
            other.0.load(Ordering::Relaxed),
            1,
            "the refused one is not counted"
        );
        drop(a);
        assert!(SubscriptionSlot::take(&open, Some(&socket), &limits).is_ok());
        drop((b, c));
        assert_eq!(open.count(), 0);
    }
}
