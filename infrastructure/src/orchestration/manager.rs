//! The process manager: a feed consumer that turns start, stop and restart
//! requests into orchestrator calls and their completing commands.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use postgres_es::PostgresEventRepository;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinSet;

use super::job::Worker;
use super::orchestrator::Orchestrator;
use super::requests::{self, QueuedRequest, RequestKey};
use crate::commands::CommandBus;
use crate::feed::{ConsumerError, FeedConsumer, StoredEvent};

/// How the process manager works.
#[derive(Clone, Debug)]
pub struct OrchestrationConfig {
    /// This hub's id, recorded on attempts and on the completions' origin.
    pub hub_id: String,
    /// How long one orchestrator call may take before it is cancelled and
    /// the request fails.
    pub timeout: Duration,
}

/// Drives the orchestrator from the event feed.
///
/// Run it with [`spawn_runner`](crate::feed::spawn_runner) under
/// [`ProcessManager::NAME`]: the runner's advisory lock makes it active in
/// exactly one hub process per database.
///
/// # How a request is handled
///
/// 1. **Enqueue.** `handle` records each request event of the batch in
///    `orchestration_requests`, in the batch's transaction, so the request
///    is durable exactly when the checkpoint moves past it. Nothing slow
///    happens inside the batch, so one long start holds up neither the feed
///    nor other projects.
/// 2. **Dispatch.** After the batch commits, each request is worked on in a
///    task of its own; requests of different projects run concurrently. (A
///    project has at most one pending request, so a project's requests
///    never run concurrently.)
/// 3. **Check.** The task loads the aggregate. If the request is no longer
///    pending (completed already, e.g. before a restart), it is closed
///    without running anything.
/// 4. **Mark the attempt**, in its own committed transaction, *before* the
///    orchestrator is called.
/// 5. **Run** the orchestrator, cancelled after the timeout (the shell
///    adapter kills the command's process group).
/// 6. **Complete** through the [`CommandBus`]: `CompleteStart`/`FailStart`
///    or `CompleteStop`/`FailStop`, naming the request's sequence, so a late
///    or repeated completion is rejected by the aggregate instead of being
///    applied twice. Retried while the database is unavailable.
///
/// # After a crash or restart
///
/// When a process manager becomes active (at start, after taking over from
/// another hub, after a reconnect) it resumes every request not finished:
///
/// - not yet attempted (the hub died before step 4): run normally, once;
/// - attempted but not finished (the hub died during steps 4-6): the
///   command may have partly run, and re-running a start or stop that is not
///   idempotent could do harm, so it is **never run again**: the request
///   fails with the reason [`INTERRUPTED`](super::INTERRUPTED) (the project
///   goes to ERROR) and the user decides to start or stop again;
/// - completed in the store but not marked finished: closed (step 3).
///
/// So an orchestrator operation runs at most once per request, and every
/// request ends with exactly one completion event.
///
/// A hub that loses its database connection while another takes over may
/// still finish its attempt; the other hub then fails the request as
/// interrupted, and whichever completion commits first wins (the other is
/// rejected and logged). A graceful shutdown cancels the requests in
/// flight; they are failed as interrupted by the next active hub.
pub struct ProcessManager {
    worker: Arc<Worker>,
    /// Requests of the batch in flight, dispatched once it commits.
    batch: Mutex<Vec<QueuedRequest>>,
    /// Requests being worked on in this process.
    in_flight: Arc<Mutex<HashSet<RequestKey>>>,
    /// The tasks working on them; dropping the manager cancels them.
    tasks: Mutex<JoinSet<()>>,
    /// Whether resuming unfinished requests failed and must be tried again.
    resume_owed: AtomicBool,
}

impl ProcessManager {
    /// The consumer name (its checkpoint and lock key).
    pub const NAME: &'static str = "project_orchestrator";

    /// A process manager recording completions through `bus` and calling
    /// `orchestrator`.
    pub fn new(
        pool: PgPool,
        bus: Arc<CommandBus>,
        orchestrator: Arc<dyn Orchestrator>,
        config: OrchestrationConfig,
    ) -> Self {
        Self {
            worker: Arc::new(Worker {
                store: crate::commands::project_store(PostgresEventRepository::new(pool.clone())),
                pool,
                bus,
                orchestrator,
                hub_id: config.hub_id,
                timeout: config.timeout,
            }),
            batch: Mutex::new(Vec::new()),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            tasks: Mutex::new(JoinSet::new()),
            resume_owed: AtomicBool::new(false),
        }
    }

    /// Starts work on each request not already being worked on here.
    fn dispatch(&self, requests: Vec<QueuedRequest>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget finished tasks, so the set does not grow for ever.
        while tasks.try_join_next().is_some() {}
        for request in requests {
            let fresh = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(request.key);
            if !fresh {
                continue;
            }
            let worker = self.worker.clone();
            let guard = InFlight {
                key: request.key,
                set: self.in_flight.clone(),
            };
            tasks.spawn(async move {
                let _guard = guard;
                worker.work(&request).await;
            });
        }
    }
}

/// Removes a request from the in-flight set when its task ends, however it
/// ends.
struct InFlight {
    key: RequestKey,
    set: Arc<Mutex<HashSet<RequestKey>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[async_trait::async_trait]
impl FeedConsumer for ProcessManager {
    fn name(&self) -> &str {
        Self::NAME
    }

    /// Only a batch with a start, stop or restart request records anything
    /// (the request, durably); the others only move the checkpoint.
    fn writes(&self, events: &[StoredEvent]) -> bool {
        events.iter().any(QueuedRequest::is_request)
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError> {
        let found: Vec<QueuedRequest> = events
            .iter()
            .filter_map(QueuedRequest::from_event)
            .collect();
        requests::enqueue(tx, &found).await?;
        *self.batch.lock().unwrap_or_else(PoisonError::into_inner) = found;
        Ok(())
    }

    async fn after_commit(&self) {
        let committed =
            std::mem::take(&mut *self.batch.lock().unwrap_or_else(PoisonError::into_inner));
        if !committed.is_empty() {
            self.dispatch(committed);
        }
        if self.resume_owed.swap(false, Ordering::SeqCst) {
            self.resume(1).await;
        }
    }

    /// Resumes every unfinished request (see "After a crash or restart").
    async fn on_activate(&self) {
        self.batch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.resume(RESUME_ATTEMPTS).await;
    }
}

/// How often an activation tries to read the unfinished requests before it
/// leaves that to the next committed batch.
const RESUME_ATTEMPTS: u32 = 5;

impl ProcessManager {
    /// Dispatches every unfinished request; on failure after `attempts`
    /// tries, owes it to the next committed batch.
    async fn resume(&self, attempts: u32) {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=attempts {
            match requests::unfinished(&self.worker.pool).await {
                Ok(resumed) => {
                    if !resumed.is_empty() {
                        tracing::info!(
                            requests = resumed.len(),
                            "resuming unfinished orchestration requests"
                        );
                    }
                    self.dispatch(resumed);
                    return;
                }
                Err(err) if attempt < attempts => {
                    tracing::warn!(error = %err, retry_in = ?delay, "could not read unfinished orchestration requests; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => {
                    tracing::error!(error = %err, "could not read unfinished orchestration requests; trying again after the next batch");
                }
            }
        }
        self.resume_owed.store(true, Ordering::SeqCst);
    }
}
