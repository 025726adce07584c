//! Runs one feed consumer: exactly one active runner per consumer across
//! all hub processes on a database, batches in feed order, checkpoints,
//! retries.
//!
//! What a runner does, in order (each step names the module to read):
//! 1. [`spawn_runner`] starts its task; [`Runner::run`] below loops over
//!    sessions, backing off between them, until the runner is stopped.
//! 2. A session (`session`) connects (its own connection, not the pool's),
//!    waits for the consumer's advisory lock, turns `synchronous_commit`
//!    off, and loads the [`state::RunnerState`] (`state`): the checkpoint,
//!    what its row holds, and whether the consumer has parked events.
//! 3. Each step (`batch`) reads the next batch after the checkpoint through
//!    the process's shared window (`crate::feed::shared`), chooses its
//!    [`plan::BatchPlan`] (`plan`: idle, park an unreadable event, writes
//!    nothing, one statement, or a transaction with hold-back), runs it and
//!    moves the checkpoint, reporting the commit in the status (`status`).
//! 4. The session reacts to the step: idle, it waits for this process's
//!    next append (or polls later and later); after progress it starts its
//!    delays short again; on an outage it retries, unbounded; on a failure
//!    it retries with backoff and, after `max_attempts`, hands the batch
//!    over one event at a time (`isolate`) to park or halt on the failing
//!    event.
//! 5. A database error ends the session: its connection closes, which
//!    releases the lock (a runner elsewhere may take over), and step 2
//!    starts again after a backoff.

mod batch;
mod isolate;
mod paths;
mod plan;
mod session;
mod state;
mod status;

use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::consumer::{ConsumerError, ConsumerStatus, FeedConsumer, RunnerConfig};
use super::shared::SharedReads;
use super::signal::AppendSignal;
use status::Status;

/// Longest wait between two attempts to reconnect to the database (however
/// large `max_backoff`). An attempt against a database that is down costs
/// one refused connection; a longer wait keeps the feeds stopped that much
/// longer after the database is back, and with them every read-your-writes
/// answer (mutations committed then would be answered UNAVAILABLE) and the
/// process manager.
const MAX_RECONNECT_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// A running consumer: its status and its task.
pub struct FeedHandle {
    name: String,
    status: watch::Receiver<ConsumerStatus>,
    status_tx: Status,
    task: JoinHandle<()>,
}

impl FeedHandle {
    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current status.
    pub fn status(&self) -> ConsumerStatus {
        self.status.borrow().clone()
    }

    /// A receiver that changes after each batch and each failure.
    pub fn watch(&self) -> watch::Receiver<ConsumerStatus> {
        self.status.clone()
    }

    /// Stops the runner. Its connection closes, which releases its lock, so
    /// a runner in another process takes over.
    pub fn stop(&self) {
        self.task.abort();
        self.status_tx.stopped();
    }
}

impl Drop for FeedHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a runner for `consumer` on its own connection (not from the pool:
/// the lock lives as long as that connection).
pub fn spawn_runner<C: FeedConsumer>(
    consumer: Arc<C>,
    connect: PgConnectOptions,
    config: RunnerConfig,
    appended: &AppendSignal,
) -> FeedHandle {
    let (status, status_rx) = Status::new();
    let name = consumer.name().to_owned();
    let runner = Runner {
        consumer,
        connect,
        config,
        appended: appended.subscribe(),
        reads: appended.reads(),
        status: status.clone(),
    };
    let task = tokio::spawn(runner.run());
    FeedHandle {
        name,
        status: status_rx,
        status_tx: status,
        task,
    }
}

/// What a runner is given: its consumer, where and how to run it, and
/// where to report. What changes while it runs is in its session
/// ([`state::RunnerState`] and the session's pacing).
struct Runner<C> {
    consumer: Arc<C>,
    connect: PgConnectOptions,
    config: RunnerConfig,
    /// This process's append count (see [`AppendSignal`]).
    appended: watch::Receiver<u64>,
    reads: Arc<SharedReads>,
    status: Status,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    /// The database failed: the session ends.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The consumer failed on the batch; nothing of it was committed.
    #[error("consumer failed: {0}")]
    Consumer(ConsumerError),
    /// The checkpoint row is not where this runner left it.
    #[error("another runner moved the checkpoint")]
    LostCheckpoint,
}

impl<C: FeedConsumer> Runner<C> {
    /// Runs sessions until the task is aborted. A session that was active
    /// ends in a fresh outage, retried after `min_backoff`; one that never
    /// got going doubles the wait, up to [`MAX_RECONNECT_BACKOFF`].
    async fn run(mut self) {
        let mut backoff = self.config.min_backoff;
        loop {
            let err = self.hold_lock_and_consume().await;
            if self.status.is_active() {
                // The last session worked: this is a fresh outage, not a
                // continuing one, so start over with a short delay.
                backoff = self.config.min_backoff;
            }
            self.status.disconnected(err.to_string());
            tracing::warn!(consumer = self.consumer.name(), error = %err, retry_in = ?backoff, "feed runner lost its connection");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2)
                .min(self.config.max_backoff)
                .min(MAX_RECONNECT_BACKOFF);
        }
    }
}
