//! Group commit: the commits of concurrent commands and published events
//! appended to the store in shared transactions.
//!
//! A commit is what one command (or one published event) writes: its
//! events, and the aggregate's snapshot when one is due. Callers hand
//! commits to an [`Appender`]; a few workers each take every commit waiting
//! in the queue (up to [`MAX_BATCH`] by default) and append them with one statement,
//! one transaction and one WAL flush (`hub_append_batch`, migration 0008).
//! While one batch is being written the next one gathers, so the more
//! commits arrive at once, the more share a flush; a lone commit is written
//! at once, alone.
//!
//! Each commit keeps what it would have on its own:
//! - its own optimistic-concurrency check: the unique sequence number of its
//!   first event, and the snapshot it was decided on;
//! - its own outcome: a conflict (or a slug or port another commit holds) is
//!   undone in that commit's subtransaction and fails it alone; a batch that
//!   fails as a whole for any other reason is run again one commit per
//!   transaction, so that each gets its own answer;
//! - its own acknowledgement, sent only once the batch's transaction has
//!   committed (durably: the pool's `synchronous_commit` is on). A crash
//!   before that leaves none of the batch in the store.
//!
//! The rows of a commit are those postgres-es would write (the shared
//! executor, `crate::execute`, builds them), so postgres-es reads what the
//! appender wrote. postgres-es itself opens one transaction per commit
//! inside the crate and has no way to share it, so it cannot group commits.
//!
//! Layout:
//! - this file: [`Appender`], its queue and its workers;
//! - `batch`: one batch written by `hub_append_batch`.

mod batch;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::persist::SerializedEvent;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use crate::feed::{AppendSignal, FeedPosition};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Commits appended in one transaction by default.
pub const MAX_BATCH: usize = 32;

/// The most commits one transaction may take. Each runs in its own
/// subtransaction; PostgreSQL keeps 64 of their ids per backend in shared
/// memory before other sessions' snapshots must look them up on disk.
pub const BATCH_CEILING: usize = 64;

/// Batches written at the same time by default, each on its own pooled
/// connection.
pub const WORKERS: usize = 4;

/// How the appender groups commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendLimits {
    /// Most commits in one transaction (1 to [`BATCH_CEILING`]); 1 turns
    /// group commit off.
    pub max_batch: usize,
    /// Batches written at the same time (at least one).
    pub workers: usize,
}

impl Default for AppendLimits {
    fn default() -> Self {
        Self {
            max_batch: MAX_BATCH,
            workers: WORKERS,
        }
    }
}

/// The snapshot a commit writes beside its events, as postgres-es does:
/// `current_snapshot` 1 inserts the aggregate's first, a higher one replaces
/// the one numbered `current_snapshot - 1` (and conflicts if it is not the
/// stored one).
#[derive(Clone, Debug)]
pub struct SnapshotUpdate {
    /// The aggregate's serialized state.
    pub payload: Value,
    /// The sequence of the last event the snapshot includes.
    pub last_sequence: usize,
    /// The snapshot's number (1 for the first).
    pub current_snapshot: usize,
}

/// What one command (or one published event) writes.
#[derive(Clone, Debug)]
pub struct Commit {
    /// Its events, one aggregate's, in sequence order; not empty.
    pub events: Vec<SerializedEvent>,
    /// The aggregate's snapshot, when one is due.
    pub snapshot: Option<SnapshotUpdate>,
}

/// What the store made of an appended commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The stored events' ids (`events.event_id`), in sequence order.
    pub event_ids: Vec<Uuid>,
    /// Where the last of them is in the feed's order: a consumer whose
    /// checkpoint reached it has seen all of them.
    pub last: FeedPosition,
    /// When the first of them was written.
    pub recorded_at: DateTime<Utc>,
}

/// Why a commit was not appended. Nothing of it is in the store.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another commit holds what this one claims: the sequence number of its
    /// first event, its snapshot, or a slug or port (see migration 0002).
    #[error("another commit went first")]
    Conflict,
    /// The database cannot be reached (or the hub is stopping); retry later.
    /// A commit that failed this way while its transaction was committing
    /// may be in the store after all, as with any database client.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A bug or data the store refused.
    #[error("the store refused the commit: {0}")]
    Internal(#[source] BoxError),
}

/// A commit waiting in the queue, with where its outcome goes.
struct Request {
    commit: Commit,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// The queue of commits to append and the workers that append them. Cheap
/// to clone; the workers stop when the last clone is dropped.
#[derive(Clone)]
pub struct Appender {
    queue: mpsc::Sender<Request>,
}

impl Appender {
    /// Starts the workers, writing to `pool` and waking feed runners through
    /// `appended` after each batch that stored events. Must be called within
    /// a Tokio runtime.
    pub fn start(pool: PgPool, appended: AppendSignal) -> Self {
        Self::with_limits(pool, appended, AppendLimits::default())
    }

    /// As [`Appender::start`], grouping as `limits` say (clamped to their
    /// bounds). With one worker, commits that arrive while a batch is being
    /// written all go into the next.
    pub fn with_limits(pool: PgPool, appended: AppendSignal, limits: AppendLimits) -> Self {
        let max_batch = limits.max_batch.clamp(1, BATCH_CEILING);
        let workers = limits.workers.max(1);
        let (queue, waiting) = mpsc::channel(4 * max_batch * workers);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..workers {
            let worker = Worker {
                pool: pool.clone(),
                appended: appended.clone(),
                waiting: waiting.clone(),
                max_batch,
            };
            tokio::spawn(worker.run());
        }
        Self { queue }
    }

    /// Appends `commit` with whatever else is waiting, and answers once its
    /// transaction committed.
    ///
    /// A caller that gives up (drops the future) before its commit's batch
    /// starts is not appended; one that gives up later may be.
    ///
    /// # Errors
    /// See [`AppendError`].
    pub async fn append(&self, commit: Commit) -> Result<Appended, AppendError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Request { commit, reply })
            .await
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    /// Commits waiting for a worker (not counting those being written).
    pub fn waiting(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }
}

fn stopped() -> AppendError {
    AppendError::Unavailable("the hub is stopping; the commit was not appended".into())
}

/// One worker: takes everything waiting (up to `max_batch`) and appends
/// it, until every [`Appender`] is dropped.
struct Worker {
    pool: PgPool,
    appended: AppendSignal,
    waiting: Arc<Mutex<mpsc::Receiver<Request>>>,
    max_batch: usize,
}

impl Worker {
    async fn run(self) {
        loop {
            let mut requests = Vec::new();
            {
                let mut waiting = self.waiting.lock().await;
                if waiting.recv_many(&mut requests, self.max_batch).await == 0 {
                    return;
                }
            }
            // Callers that have given up are not written for.
            requests.retain(|request| !request.reply.is_closed());
            if requests.is_empty() {
                continue;
            }
            batch::append(&self.pool, requests, &self.appended).await;
        }
    }
}
