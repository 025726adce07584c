//! Runs one feed consumer: exactly one active runner per consumer across all
//! hub processes on a database, batches in feed order, checkpoints, retries.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::event::{read_after, FeedPosition, StoredEvent};

/// An error a consumer returns for a batch; the batch is retried with backoff.
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
    /// Any error rolls the batch back; it is retried with backoff.
    async fn handle(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError>;

    /// Called each time this runner becomes the active one (at start and
    /// after taking over from another process or reconnecting), before the
    /// first batch. Another runner may have worked in between, so a consumer
    /// that caches what it has done outside the database must forget it here.
    async fn on_activate(&self) {}

    /// Called after a batch handled by [`FeedConsumer::handle`] committed
    /// (with its checkpoint), e.g. to tell in-process waiters what changed.
    /// Not called when the batch rolled back.
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
    /// Wait for the WAL flush on each batch commit. Off by default: a
    /// consumer whose writes can all be redone from the store loses nothing
    /// but a re-run of its last batches in a database crash. Turn it on for a
    /// consumer whose batch records facts it acts on outside the database.
    pub durable_commits: bool,
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
}

/// Wakes feed runners when this process has appended events.
#[derive(Clone, Debug)]
pub struct AppendSignal(Arc<watch::Sender<u64>>);

impl Default for AppendSignal {
    fn default() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }
}

impl AppendSignal {
    /// Tells every runner that new events were committed.
    pub fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// A running consumer: its status and its task.
pub struct FeedHandle {
    name: String,
    status: watch::Receiver<ConsumerStatus>,
    status_tx: Arc<watch::Sender<ConsumerStatus>>,
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
        self.status_tx.send_modify(|s| s.active = false);
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
    let (status_tx, status_rx) = watch::channel(ConsumerStatus::default());
    let status_tx = Arc::new(status_tx);
    let name = consumer.name().to_owned();
    let runner = Runner {
        consumer,
        connect,
        config,
        appended: appended.subscribe(),
        status: status_tx.clone(),
    };
    let task = tokio::spawn(runner.run());
    FeedHandle {
        name,
        status: status_rx,
        status_tx,
        task,
    }
}

struct Runner<C> {
    consumer: Arc<C>,
    connect: PgConnectOptions,
    config: RunnerConfig,
    appended: watch::Receiver<u64>,
    status: Arc<watch::Sender<ConsumerStatus>>,
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("consumer failed: {0}")]
    Consumer(ConsumerError),
    #[error("another runner moved the checkpoint")]
    LostCheckpoint,
}

impl<C: FeedConsumer> Runner<C> {
    async fn run(mut self) {
        let mut backoff = self.config.min_backoff;
        loop {
            let err = self.hold_lock_and_consume().await;
            if self.status.borrow().active {
                // The last session worked: this is a fresh outage, not a
                // continuing one, so start over with a short delay.
                backoff = self.config.min_backoff;
            }
            self.status.send_modify(|s| {
                s.active = false;
                s.last_error = Some(err.to_string());
                s.consecutive_failures += 1;
            });
            tracing::warn!(consumer = self.consumer.name(), error = %err, retry_in = ?backoff, "feed runner lost its connection");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    /// Runs until the connection fails; returns why.
    async fn hold_lock_and_consume(&mut self) -> StepError {
        let mut conn = match PgConnection::connect_with(&self.connect).await {
            Ok(conn) => conn,
            Err(err) => return err.into(),
        };
        if let Err(err) = self.wait_for_lock(&mut conn).await {
            return err.into();
        }
        // A consumer's batch and checkpoint commit together, and what most
        // consumers write can be redone from the store: losing the last
        // commits in a database crash only means handling those events again.
        // So, unless told otherwise, the runner does not wait for the WAL
        // flush on each batch.
        if !self.config.durable_commits {
            if let Err(err) = sqlx::query("SET synchronous_commit = off")
                .execute(&mut conn)
                .await
            {
                return err.into();
            }
        }
        let name = self.consumer.name().to_owned();
        tracing::info!(consumer = %name, "feed runner is active");
        if let Err(err) = sqlx::query(
            "INSERT INTO feed_checkpoints (consumer) VALUES ($1) ON CONFLICT (consumer) DO NOTHING",
        )
        .bind(&name)
        .execute(&mut conn)
        .await
        {
            return err.into();
        }
        let (mut checkpoint, mut handled) = match load_checkpoint(&mut conn, &name).await {
            Ok(loaded) => loaded,
            Err(err) => return err.into(),
        };
        self.consumer.on_activate().await;
        self.status.send_modify(|s| {
            s.active = true;
            s.checkpoint = checkpoint;
            s.handled = handled;
        });

        let mut idle = self.config.min_poll;
        let mut backoff = self.config.min_backoff;
        loop {
            match self.step(&mut conn, checkpoint, handled).await {
                Ok(None) => {
                    // After a wake-up the new event may still be held back by
                    // the xmin fence (an older transaction still running) for
                    // a moment: re-read after `min_poll`, then back off.
                    tokio::select! {
                        woken = self.appended.changed() => {
                            if woken.is_err() {
                                // Every writer is gone: only polling is left.
                                tokio::time::sleep(idle).await;
                                idle = (idle * 2).min(self.config.max_poll);
                            } else {
                                idle = self.config.min_poll;
                            }
                        }
                        _ = tokio::time::sleep(idle) => idle = (idle * 2).min(self.config.max_poll),
                    }
                }
                Ok(Some((last, count))) => {
                    checkpoint = last;
                    handled += count as i64;
                    idle = self.config.min_poll;
                    backoff = self.config.min_backoff;
                    self.consumer.after_commit().await;
                }
                Err(StepError::Consumer(err)) => {
                    let failures = self.record_failure(err.to_string());
                    tracing::error!(consumer = %name, error = %err, failures, retry_in = ?backoff, "feed consumer failed on a batch; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
                Err(err) => return err,
            }
        }
    }

    fn record_failure(&self, error: String) -> u32 {
        let mut failures = 0;
        self.status.send_modify(|s| {
            s.last_error = Some(error);
            s.consecutive_failures += 1;
            failures = s.consecutive_failures;
        });
        failures
    }

    async fn wait_for_lock(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        loop {
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                .bind(lock_name(self.consumer.name()))
                .fetch_one(&mut *conn)
                .await?;
            if locked {
                return Ok(());
            }
            tokio::time::sleep(self.config.lock_retry).await;
        }
    }

    /// One batch in one transaction. Returns the new checkpoint and the
    /// number of events handled, or `None` when nothing new was committed.
    ///
    /// The checkpoint is kept in memory while this runner holds the lock; the
    /// compare-and-set in the update still refuses to move a checkpoint that
    /// someone else moved.
    async fn step(
        &self,
        conn: &mut PgConnection,
        checkpoint: FeedPosition,
        handled: i64,
    ) -> Result<Option<(FeedPosition, usize)>, StepError> {
        let name = self.consumer.name();
        // The read runs outside any transaction: an idle poll costs one query
        // and never holds an xid that would hold back other readers' fence.
        let events = read_after(&mut *conn, checkpoint, self.config.batch_size).await?;
        let Some(last) = events.last().map(StoredEvent::feed_position) else {
            // A successful read also ends a failure streak (e.g. after a reconnect).
            self.status.send_if_modified(|s| {
                s.polls += 1;
                let changed = s.consecutive_failures != 0 || s.last_error.is_some();
                s.consecutive_failures = 0;
                s.last_error = None;
                changed
            });
            return Ok(None);
        };
        let mut tx = conn.begin().await?;
        self.consumer
            .handle(&mut tx, &events)
            .await
            .map_err(StepError::Consumer)?;
        let moved = sqlx::query(
            "UPDATE feed_checkpoints \
             SET transaction_id = $2::text::xid8, position = $3, handled = handled + $4, updated_at = now() \
             WHERE consumer = $1 AND transaction_id = $5::text::xid8 AND position = $6",
        )
        .bind(name)
        .bind(last.transaction_id.to_string())
        .bind(last.position)
        .bind(events.len() as i64)
        .bind(checkpoint.transaction_id.to_string())
        .bind(checkpoint.position)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Err(StepError::LostCheckpoint);
        }
        tx.commit().await?;
        let count = events.len();
        self.status.send_modify(|s| {
            s.polls += 1;
            s.checkpoint = last;
            s.handled = handled + count as i64;
            s.batches += 1;
            s.last_error = None;
            s.consecutive_failures = 0;
            s.last_batch_at = Some(Utc::now());
        });
        tracing::debug!(consumer = name, events = count, "feed batch committed");
        Ok(Some((last, count)))
    }
}

/// Reads a consumer's checkpoint and handled count.
async fn load_checkpoint(
    conn: &mut PgConnection,
    consumer: &str,
) -> Result<(FeedPosition, i64), sqlx::Error> {
    let (transaction_id, position, handled): (i64, i64, i64) = sqlx::query_as(
        "SELECT transaction_id::text::bigint, position, handled \
         FROM feed_checkpoints WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_one(conn)
    .await?;
    Ok((
        FeedPosition {
            transaction_id,
            position,
        },
        handled,
    ))
}

fn lock_name(consumer: &str) -> String {
    format!("hub.feed.{consumer}")
}
