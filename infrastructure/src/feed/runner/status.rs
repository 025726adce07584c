//! What a runner reports about its consumer ([`ConsumerStatus`]), for
//! `/health`, the metrics and the read-your-writes waits that watch it.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch;

use crate::feed::consumer::ConsumerStatus;
use crate::feed::event::FeedPosition;
use crate::feed::poison::HaltedOn;

/// The sending side of a runner's [`ConsumerStatus`]; every change the
/// runner makes to it is one method here.
#[derive(Clone, Debug)]
pub(super) struct Status(Arc<watch::Sender<ConsumerStatus>>);

impl Status {
    /// A status at its default (inactive), and a receiver of it.
    pub(super) fn new() -> (Self, watch::Receiver<ConsumerStatus>) {
        let (tx, rx) = watch::channel(ConsumerStatus::default());
        (Self(Arc::new(tx)), rx)
    }

    /// Whether the runner holds its lock and runs the consumer.
    pub(super) fn is_active(&self) -> bool {
        self.0.borrow().active
    }

    /// The runner holds the lock and resumes at `checkpoint`.
    pub(super) fn activated(&self, checkpoint: FeedPosition, handled: i64) {
        self.0.send_modify(|s| {
            s.active = true;
            s.checkpoint = checkpoint;
            s.handled = handled;
        });
    }

    /// A batch (or a single event) committed; the checkpoint is now
    /// `checkpoint`.
    pub(super) fn committed(&self, checkpoint: FeedPosition, handled: i64) {
        self.0.send_modify(|s| {
            s.polls += 1;
            s.checkpoint = checkpoint;
            s.handled = handled;
            s.batches += 1;
            s.last_error = None;
            s.consecutive_failures = 0;
            s.last_batch_at = Some(Utc::now());
            s.halted = None;
        });
    }

    /// A read found nothing new. A successful read also ends a failure
    /// streak (e.g. after a reconnect); only that wakes the watchers.
    pub(super) fn found_nothing(&self) {
        self.0.send_if_modified(|s| {
            s.polls += 1;
            let changed = s.consecutive_failures != 0 || s.last_error.is_some();
            s.consecutive_failures = 0;
            s.last_error = None;
            changed
        });
    }

    /// The consumer failed on a batch; returns the failures in a row.
    pub(super) fn failed(&self, error: String) -> u32 {
        let mut failures = 0;
        self.0.send_modify(|s| {
            s.last_error = Some(error);
            s.consecutive_failures += 1;
            failures = s.consecutive_failures;
        });
        failures
    }

    /// The consumer is halted on `on` ([`crate::feed::PoisonPolicy::Halt`]).
    pub(super) fn halted(&self, on: HaltedOn) {
        self.0.send_modify(|s| s.halted = Some(on));
    }

    /// The runner lost its connection (and with it the lock).
    pub(super) fn disconnected(&self, error: String) {
        self.0.send_modify(|s| {
            s.active = false;
            s.last_error = Some(error);
            s.consecutive_failures += 1;
        });
    }

    /// The runner was stopped.
    pub(super) fn stopped(&self) {
        self.0.send_modify(|s| s.active = false);
    }
}
