//! Group commit: the commits of concurrent commands and published events
//! appended to the store in shared transactions.
//!
//! A commit is what one command (or one published event) writes: its
//! events, and the aggregate's snapshot when one is due. Callers hand
//! commits to an [`Appender`]; a few workers each take every commit waiting
//! in the queue (up to [`MAX_BATCH`]) and append them with one statement,
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
//! Layout:
//! - this file: [`Appender`], its queue and its workers;
//! - `batch`: one batch written by `hub_append_batch`;
//! - `repository`: [`EventRepository`], postgres-es for reading and the
//!   appender for writing, behind cqrs-es' `PersistedEventRepository`.

mod batch;
mod repository;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cqrs_es::persist::SerializedEvent;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use crate::feed::AppendSignal;

pub use repository::EventRepository;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Commits appended in one transaction at most. Each runs in its own
/// subtransaction; PostgreSQL keeps 64 of their ids per backend in shared
/// memory before other sessions' snapshots must look them up on disk.
pub const MAX_BATCH: usize = 32;

/// Batches written at the same time, each on its own pooled connection.
const WORKERS: usize = 4;

/// Commits waiting for a worker before `append` waits for room.
const QUEUE: usize = 4 * MAX_BATCH;

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
        Self::with_workers(pool, appended, WORKERS)
    }

    /// As [`Appender::start`], with `workers` batches written at the same
    /// time (at least one). With one, commits that arrive while a batch is
    /// being written all go into the next.
    pub fn with_workers(pool: PgPool, appended: AppendSignal, workers: usize) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(pool.clone(), appended.clone(), waiting.clone()));
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

/// One worker: takes everything waiting (up to [`MAX_BATCH`]) and appends
/// it, until every [`Appender`] is dropped.
async fn work(pool: PgPool, appended: AppendSignal, waiting: Arc<Mutex<mpsc::Receiver<Request>>>) {
    loop {
        let mut requests = Vec::new();
        {
            let mut waiting = waiting.lock().await;
            if waiting.recv_many(&mut requests, MAX_BATCH).await == 0 {
                return;
            }
        }
        // Callers that have given up are not written for.
        requests.retain(|request| !request.reply.is_closed());
        if requests.is_empty() {
            continue;
        }
        batch::append(&pool, requests, &appended).await;
    }
}
