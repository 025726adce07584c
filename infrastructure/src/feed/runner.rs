//! Runs one feed consumer: exactly one active runner per consumer across all
//! hub processes on a database, batches in feed order, checkpoints, retries.

use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::batch::Saved;
use super::consumer::{ConsumerError, ConsumerStatus, FeedConsumer, RunnerConfig};
use super::event::{FeedPosition, StoredEvent};
use super::parked::has_parked;
use super::shared::SharedReads;

/// Longest wait between two attempts to reconnect to the database (however
/// large `max_backoff`). An attempt against a database that is down costs
/// one refused connection; a longer wait keeps the feeds stopped that much
/// longer after the database is back, and with them every read-your-writes
/// answer (mutations committed then would be answered UNAVAILABLE) and the
/// process manager.
const MAX_RECONNECT_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

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

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.appends.subscribe()
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
        reads: appended.reads.clone(),
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

/// One runner's state (its batch loop here, the search for a poison event
/// in `isolate`).
pub(super) struct Runner<C> {
    pub(super) consumer: Arc<C>,
    connect: PgConnectOptions,
    pub(super) config: RunnerConfig,
    appended: watch::Receiver<u64>,
    reads: Arc<SharedReads>,
    pub(super) status: Arc<watch::Sender<ConsumerStatus>>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum StepError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("consumer failed: {0}")]
    Consumer(ConsumerError),
    #[error("another runner moved the checkpoint")]
    LostCheckpoint,
}

impl<C: FeedConsumer> Runner<C> {
    /// Reads the next batch after `checkpoint`, through the process's
    /// shared window of the log.
    pub(super) async fn read_batch(
        &self,
        conn: &mut PgConnection,
        checkpoint: FeedPosition,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let appends = *self.appended.borrow();
        self.reads
            .read_after(conn, checkpoint, self.config.batch_size, appends)
            .await
    }

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
            backoff = (backoff * 2)
                .min(self.config.max_backoff)
                .min(MAX_RECONNECT_BACKOFF);
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
        // So the runner does not wait for the WAL flush, except on the
        // batches of a durable consumer that write (see `begin_batch`).
        if let Err(err) = sqlx::query("SET synchronous_commit = off")
            .execute(&mut conn)
            .await
        {
            return err.into();
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
        // Only this runner parks events for its consumer while it holds the
        // lock (retries and rebuilds only remove them), so once it has seen
        // none it can skip looking before each batch until it parks one.
        // Every consumer may have some: unreadable events are parked
        // whatever the policy.
        let mut may_hold_back = match has_parked(&mut conn, &name).await {
            Ok(found) => found,
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
        // Failures of the current batch in a row, outages aside.
        let mut attempts = 0;
        let mut saved = Saved::at(checkpoint, handled);
        loop {
            match self
                .step(
                    &mut conn,
                    checkpoint,
                    handled,
                    &mut saved,
                    &mut may_hold_back,
                )
                .await
            {
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
                    attempts = 0;
                    idle = self.config.min_poll;
                    backoff = self.config.min_backoff;
                    self.consumer.after_commit().await;
                }
                Err(StepError::Consumer(err)) if self.consumer.is_outage(&err) => {
                    // The consumer's statements run on this runner's
                    // connection, which may be the one that broke (its reads
                    // may have come from the shared window, so the consumer
                    // was the first to use it): then only a new one helps.
                    if let Err(broken) = conn.ping().await {
                        tracing::warn!(consumer = %name, error = %err, "feed consumer failed on a broken connection; reconnecting");
                        return broken.into();
                    }
                    // Not the consumer's fault: retried until it works, and
                    // not counted towards `max_attempts`.
                    let failures = self.record_failure(err.to_string());
                    tracing::warn!(consumer = %name, error = %err, failures, retry_in = ?backoff, "feed consumer could not reach a service; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
                Err(StepError::Consumer(err)) => {
                    attempts += 1;
                    let failures = self.record_failure(err.to_string());
                    if attempts < self.config.max_attempts.max(1) {
                        tracing::error!(consumer = %name, error = %err, failures, retry_in = ?backoff, "feed consumer failed on a batch; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.config.max_backoff);
                        continue;
                    }
                    tracing::error!(consumer = %name, error = %err, attempts, "feed consumer keeps failing on a batch; looking for the failing event");
                    // It may park events (any consumer may park an
                    // unreadable one): look before the next batches.
                    may_hold_back = true;
                    // The search moves the checkpoint row event by event,
                    // from where it is: save what is pending first.
                    if let Err(err) = self
                        .save_checkpoint(&mut conn, &mut saved, checkpoint, handled)
                        .await
                    {
                        return err;
                    }
                    let outcome = self
                        .isolate(&mut conn, &mut checkpoint, &mut handled, attempts)
                        .await;
                    saved = Saved::at(checkpoint, handled);
                    match outcome {
                        Ok(None) => {
                            // Everything was handled or parked.
                            attempts = 0;
                            idle = self.config.min_poll;
                            backoff = self.config.min_backoff;
                        }
                        Ok(Some(on)) => {
                            // Halted: stay on the event; try it again later.
                            attempts = 0;
                            self.status.send_modify(|s| s.halted = Some(on));
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(self.config.max_backoff);
                        }
                        Err(StepError::Consumer(err)) => {
                            self.record_failure(err.to_string());
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(self.config.max_backoff);
                        }
                        Err(err) => return err,
                    }
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
