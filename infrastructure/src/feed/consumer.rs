//! What a feed consumer is, how its runner is tuned, and what the runner
//! reports about it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::checkpoint::CheckpointMove;
use super::event::{FeedPosition, StoredEvent};
use super::poison::{HaltedOn, PoisonPolicy};

/// An error a consumer returns for a batch; the batch is retried with
/// backoff, and after [`RunnerConfig::max_attempts`] handled according to
/// [`RunnerConfig::poison`] (unless it is an outage:
/// [`FeedConsumer::is_outage`]).
pub type ConsumerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Something that handles every committed event once, in feed order.
#[async_trait::async_trait]
pub trait FeedConsumer: Send + Sync + 'static {
    /// Stable name: the key of the consumer's checkpoint and lock.
    fn name(&self) -> &str;

    /// Handles one batch in feed order. Changes made through `tx` commit in
    /// the same transaction as the consumer's checkpoint, so a database
    /// consumer sees each event exactly once. A consumer with effects outside
    /// the database (e.g. publishing) must make them idempotent: they may be
    /// repeated when the checkpoint fails to commit.
    ///
    /// # Errors
    /// Any error rolls the batch back; it is retried with backoff. After
    /// [`RunnerConfig::max_attempts`] failures (outages aside) the runner
    /// hands the consumer the batch's events one at a time to find the
    /// failing one, then parks it or halts on it ([`PoisonPolicy`]).
    async fn handle(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError>;

    /// Whether handling `events` writes to the database through the
    /// connection [`FeedConsumer::handle`] is given. When it does not, the
    /// runner hands over its connection outside a transaction and moves the
    /// checkpoint with one statement afterwards (no `BEGIN`, no `COMMIT`, no
    /// WAL flush to wait for), which is most of the cost of a batch for a
    /// consumer such as the NATS relay. The default says it writes. A
    /// consumer that says it does not must not write: nothing it wrote would
    /// commit with the checkpoint.
    fn writes(&self, events: &[StoredEvent]) -> bool {
        let _ = events;
        true
    }

    /// Handles `events` and moves the checkpoint in one statement, for a
    /// consumer that writes a batch with one statement: built from
    /// [`super::checkpoint_cte`] and run by [`CheckpointMove::execute`], it
    /// writes only when the checkpoint moved. One statement is one
    /// transaction, without the `BEGIN` and `COMMIT` round trips and the
    /// separate checkpoint update of [`FeedConsumer::handle`]'s batch.
    ///
    /// Returns `Some(moved)` (whether the checkpoint moved, i.e. whether
    /// anything was written), or `None`, having done nothing, when the
    /// consumer has no such statement: the runner then uses
    /// [`FeedConsumer::handle`] in a transaction (the default). The runner
    /// only offers this path to a consumer that is not durable
    /// ([`RunnerConfig::durable_commits`]) and has nothing parked.
    ///
    /// # Errors
    /// As for [`FeedConsumer::handle`]; nothing was written.
    async fn handle_in_one_statement(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
        checkpoint: &CheckpointMove<'_>,
    ) -> Result<Option<bool>, ConsumerError> {
        let _ = (conn, events, checkpoint);
        Ok(None)
    }

    /// Called each time this runner becomes the active one (at start and
    /// after taking over from another process or reconnecting), before the
    /// first batch. Another runner may have worked in between, so a consumer
    /// that caches what it has done outside the database must forget it here.
    async fn on_activate(&self) {}

    /// Whether `err`, returned by [`FeedConsumer::handle`], means a service
    /// the consumer needs is unavailable (retried until it works; never
    /// parked or halted on) rather than a failure on its events. The default,
    /// [`super::is_outage`], knows the database's outages; a consumer that
    /// talks to another service should add that service's.
    fn is_outage(&self, err: &ConsumerError) -> bool {
        super::poison::is_outage(err.as_ref())
    }

    /// Called after each commit of the runner's checkpoint (a batch handled
    /// by [`FeedConsumer::handle`], or events parked), before the status
    /// reports it, e.g. to keep in memory what the batch wrote for the
    /// waiters the status wakes. Not called when the batch rolled back.
    async fn after_commit(&self) {}
}

/// Tuning of a runner.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Events per batch (one transaction each).
    pub batch_size: i64,
    /// Shortest wait before polling again after an empty read.
    pub min_poll: Duration,
    /// Longest wait between polls while idle. Writers in this process wake
    /// the runner at once; this bounds the delay for writes from other processes.
    pub max_poll: Duration,
    /// How often a standby runner tries to take over the consumer.
    pub lock_retry: Duration,
    /// First delay after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
    /// Wait for the WAL flush on the commit of each batch that writes (see
    /// [`FeedConsumer::writes`]). Off by default: a consumer whose writes can
    /// all be redone from the store loses nothing but a re-run of its last
    /// batches in a database crash. Turn it on for a consumer whose batch
    /// records facts it acts on outside the database. A batch that writes
    /// nothing but the checkpoint is never waited for: handling its events
    /// again after a crash changes nothing.
    pub durable_commits: bool,
    /// Longest the checkpoint row of a consumer may stay behind batches that
    /// wrote nothing (see [`FeedConsumer::writes`]) before it is updated;
    /// it is also updated whenever the runner finds nothing new and before
    /// every batch that writes. Saves one statement per batch under load
    /// (the NATS relay's batches never write); the cost is that a crash or a
    /// takeover handles up to this much progress again, which such a
    /// consumer must accept anyway. Zero updates it after every batch.
    pub checkpoint_delay: Duration,
    /// What happens to an event the consumer keeps failing on. The default,
    /// [`PoisonPolicy::Halt`], never skips an event.
    pub poison: PoisonPolicy,
    /// Failures of a batch in a row (outages not counted) before the runner
    /// looks for the failing event and applies [`RunnerConfig::poison`].
    pub max_attempts: u32,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            min_poll: Duration::from_millis(1),
            max_poll: Duration::from_millis(50),
            lock_retry: Duration::from_millis(500),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            durable_commits: false,
            checkpoint_delay: Duration::from_millis(100),
            poison: PoisonPolicy::Halt,
            max_attempts: 5,
        }
    }
}

/// What a runner is doing, for health reports and read-your-writes waits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsumerStatus {
    /// Whether this process holds the consumer's lock and runs it.
    pub active: bool,
    /// The checkpoint as last seen by this process.
    pub checkpoint: FeedPosition,
    /// Events handled in total (from the checkpoint row).
    pub handled: i64,
    /// Batches committed by this process; increases on every commit, so
    /// waiters can watch it.
    pub batches: u64,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// When this process last committed a batch.
    pub last_batch_at: Option<DateTime<Utc>>,
    /// Reads of the log by this process so far (changes without waking
    /// watchers).
    pub polls: u64,
    /// The event a [`PoisonPolicy::Halt`] consumer keeps failing on (found
    /// after [`RunnerConfig::max_attempts`] failures); cleared when it is
    /// handled.
    pub halted: Option<HaltedOn>,
}
