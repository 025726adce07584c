//! The in-process wake-up: writers of this process tell its runners that
//! events were appended, and the runners started with the same signal read
//! the log through one shared window (see `shared`).

use std::sync::Arc;

use tokio::sync::watch;

use super::shared::SharedReads;

/// Wakes feed runners when this process has appended events; the runners
/// started with the same signal also share their reads of the log (see
/// `shared`).
#[derive(Clone, Debug)]
pub struct AppendSignal {
    appends: Arc<watch::Sender<u64>>,
    reads: Arc<SharedReads>,
}

impl Default for AppendSignal {
    fn default() -> Self {
        Self {
            appends: Arc::new(watch::channel(0).0),
            reads: Arc::default(),
        }
    }
}

impl AppendSignal {
    /// Tells every runner that new events were committed.
    pub fn notify(&self) {
        self.appends.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver of the append count, which changes on every notify.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.appends.subscribe()
    }

    /// The window of the log the runners of this signal read through.
    pub(super) fn reads(&self) -> Arc<SharedReads> {
        self.reads.clone()
    }
}
