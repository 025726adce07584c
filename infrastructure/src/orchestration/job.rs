//! Working on one request: check it is still pending, mark the attempt, run
//! the orchestrator within the timeout, record the completion.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, EventStore};
use domain::{
    FailureReason, PendingRequest, Project, ProjectCommand, ProjectError, ProjectId, RequestKind,
};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use uuid::Uuid;

use super::orchestrator::{Orchestrator, ProjectSpec};
use super::requests::{self, Outcome, QueuedRequest};
use crate::error::is_unavailable;
use crate::metadata::{CommandMetadata, Origin};
use crate::{CommandBus, CommandError};

/// The reason recorded for a request whose earlier attempt was cut short.
pub const INTERRUPTED: &str = "interrupted by a hub restart: the hub stopped while this request was running, so it may have partly run; it was not run again. Check the project, then start or stop it again";

/// Everything a request's work needs; shared by all of them.
pub(super) struct Worker {
    pub(super) pool: PgPool,
    pub(super) bus: Arc<CommandBus>,
    pub(super) store: PersistedEventStore<PostgresEventRepository, Project>,
    pub(super) orchestrator: Arc<dyn Orchestrator>,
    pub(super) hub_id: String,
    pub(super) timeout: Duration,
}

/// How a request's work ended, with the failure reason it recorded.
type Ended = (Outcome, Option<String>);

impl Worker {
    /// Works on `request` to the end and records its outcome.
    #[tracing::instrument(skip_all, fields(project_id = %request.key.project_id, request = request.key.sequence, kind = request.kind.as_str()))]
    pub(super) async fn work(&self, request: &QueuedRequest) {
        let Some((outcome, reason)) = self.decide_and_run(request).await else {
            // Left unfinished: resumed the next time a process manager
            // activates (and then failed as interrupted if it was attempted).
            return;
        };
        let key = request.key;
        let recorded = persist("record the request's outcome", || {
            requests::finish(&self.pool, key, outcome, reason.as_deref())
        })
        .await;
        if recorded.is_some() {
            tracing::info!(outcome = ?outcome, "orchestration request finished");
        }
    }

    /// `None` when the work had to stop early (the database stayed away).
    async fn decide_and_run(&self, request: &QueuedRequest) -> Option<Ended> {
        let project = self.load(request.key.project_id).await?;
        let expected = PendingRequest {
            sequence: u64::try_from(request.key.sequence).ok()?,
            kind: request.kind,
        };
        let spec = match (project.pending_request(), ProjectSpec::of(&project)) {
            (Some(pending), Some(spec)) if pending == expected => spec,
            _ => {
                tracing::debug!("the request is no longer pending; nothing to do");
                return Some((Outcome::Skipped, None));
            }
        };
        let claimed = persist("mark the attempt", || {
            requests::claim(&self.pool, request.key, &self.hub_id)
        })
        .await?;
        if !claimed {
            tracing::warn!("an earlier attempt at this request was interrupted; failing it without running it again");
            return self
                .complete(request, Err(INTERRUPTED.to_owned()))
                .await
                .map(|(outcome, reason)| match outcome {
                    Outcome::Failed => (Outcome::Interrupted, reason),
                    other => (other, reason),
                });
        }
        let result = self.run(request.kind, &spec).await;
        self.complete(request, result).await
    }

    /// Runs the orchestrator within the timeout; `Err` holds the reason.
    async fn run(&self, kind: RequestKind, spec: &ProjectSpec) -> Result<(), String> {
        let operation = match kind {
            RequestKind::Start => "start",
            RequestKind::Stop | RequestKind::Restart => "stop",
        };
        tracing::info!(operation, "running the orchestrator");
        let call = async {
            match kind {
                RequestKind::Start => self.orchestrator.start(spec).await,
                RequestKind::Stop | RequestKind::Restart => self.orchestrator.stop(spec).await,
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failure)) => Err(failure.reason),
            Err(_) => Err(format!(
                "the {operation} did not finish within {} s (HUB_ORCHESTRATION_TIMEOUT_SECS) and was cancelled",
                self.timeout.as_secs_f64()
            )),
        }
    }

    /// Records the completion of `request` with `result`.
    async fn complete(&self, request: &QueuedRequest, result: Result<(), String>) -> Option<Ended> {
        let sequence = u64::try_from(request.key.sequence).ok()?;
        let (command, outcome, reason) = match (request.kind, result) {
            (RequestKind::Start, Ok(())) => (
                ProjectCommand::CompleteStart { request: sequence },
                Outcome::Completed,
                None,
            ),
            (RequestKind::Stop | RequestKind::Restart, Ok(())) => (
                ProjectCommand::CompleteStop { request: sequence },
                Outcome::Completed,
                None,
            ),
            (kind, Err(reason)) => {
                let reason = FailureReason::new(reason);
                let command = match kind {
                    RequestKind::Start => ProjectCommand::FailStart {
                        request: sequence,
                        reason: reason.clone(),
                    },
                    RequestKind::Stop | RequestKind::Restart => ProjectCommand::FailStop {
                        request: sequence,
                        reason: reason.clone(),
                    },
                };
                (command, Outcome::Failed, Some(reason.as_str().to_owned()))
            }
        };
        let metadata = self.metadata(request);
        let id = ProjectId::from_uuid(request.key.project_id);
        let mut backoff = Backoff::default();
        loop {
            match self.bus.execute(id, command.clone(), None, &metadata).await {
                Ok(_) => return Some((outcome, reason)),
                Err(CommandError::Rejected(ProjectError::RequestNotPending { .. })) => {
                    tracing::warn!("the request was completed by someone else meanwhile; this result is dropped");
                    return Some((Outcome::Skipped, None));
                }
                Err(CommandError::Rejected(rejection)) => {
                    tracing::error!(error = %rejection, "the completion was rejected; the request is left as it is");
                    return Some((Outcome::Skipped, None));
                }
                Err(err @ CommandError::Internal(_))
                    if backoff.attempts >= MAX_INTERNAL_ATTEMPTS =>
                {
                    tracing::error!(error = %err, "recording the completion keeps failing; giving up until the next activation");
                    return None;
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff.delay, "recording the completion failed; retrying");
                    backoff.wait().await;
                }
            }
        }
    }

    /// The completion's metadata: the request's correlation, caused by the
    /// request event, from this hub's orchestrator.
    fn metadata(&self, request: &QueuedRequest) -> CommandMetadata {
        CommandMetadata {
            correlation_id: request
                .correlation_id
                .clone()
                .unwrap_or_else(|| Uuid::new_v4().to_string()),
            causation_id: request.event_id.to_string(),
            origin: Origin {
                hub_id: self.hub_id.clone(),
                service: "hub-orchestrator".to_owned(),
                user: request
                    .requested_by
                    .clone()
                    .unwrap_or_else(|| "system".to_owned()),
            },
        }
    }

    /// The project as its events have it now.
    async fn load(&self, id: Uuid) -> Option<Project> {
        let mut backoff = Backoff::default();
        loop {
            match self.store.load_aggregate(&id.to_string()).await {
                Ok(context) => return Some(context.aggregate),
                Err(AggregateError::DatabaseConnectionError(err)) => {
                    tracing::warn!(error = %err, retry_in = ?backoff.delay, "loading the project failed; retrying");
                }
                Err(err) if backoff.attempts < MAX_INTERNAL_ATTEMPTS => {
                    tracing::warn!(error = %err, retry_in = ?backoff.delay, "loading the project failed; retrying");
                }
                Err(err) => {
                    tracing::error!(error = %err, "loading the project keeps failing; giving up until the next activation");
                    return None;
                }
            }
            backoff.wait().await;
        }
    }
}

/// How often a failure that is not "the database is unavailable" is retried.
const MAX_INTERNAL_ATTEMPTS: u32 = 5;

/// Runs `step` until it succeeds: for ever while the database is
/// unavailable, [`MAX_INTERNAL_ATTEMPTS`] times for other failures; `None`
/// when it gave up (logged).
async fn persist<T, F, Fut>(what: &str, mut step: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut backoff = Backoff::default();
    loop {
        match step().await {
            Ok(value) => return Some(value),
            Err(err) if is_unavailable(&err) || backoff.attempts < MAX_INTERNAL_ATTEMPTS => {
                tracing::warn!(error = %err, retry_in = ?backoff.delay, "could not {what}; retrying");
                backoff.wait().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "could not {what}; giving up until the next activation");
                return None;
            }
        }
    }
}

/// Exponential backoff from 100 ms to 30 s.
struct Backoff {
    delay: Duration,
    attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(100),
            attempts: 0,
        }
    }
}

impl Backoff {
    async fn wait(&mut self) {
        tokio::time::sleep(self.delay).await;
        self.attempts += 1;
        self.delay = (self.delay * 2).min(Duration::from_secs(30));
    }
}
