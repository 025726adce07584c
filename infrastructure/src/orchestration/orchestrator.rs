//! The interface the process manager drives ([`Orchestrator`]): what an
//! orchestrator is asked to do, and the one that does nothing.

use domain::{Ports, Project, ProjectId, ProjectName, ProjectPath, Slug};

/// What an orchestrator needs to know about a project, as its aggregate
/// has it when the request is worked on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectSpec {
    /// Its id.
    pub id: ProjectId,
    /// Its display name.
    pub name: ProjectName,
    /// Its slug: unique among live projects, safe in file and stack names.
    pub slug: Slug,
    /// Its directory.
    pub path: ProjectPath,
    /// The four host ports it owns.
    pub ports: Ports,
}

impl ProjectSpec {
    /// The spec of a created project; `None` before `ProjectCreated`.
    pub fn of(project: &Project) -> Option<Self> {
        Some(Self {
            id: project.id()?,
            name: project.name()?.clone(),
            slug: project.slug()?.clone(),
            path: project.path()?.clone(),
            ports: project.ports()?,
        })
    }
}

/// Why an orchestrator could not start or stop a project: a sentence for
/// the project's `lastError`, e.g. the exit code and the end of stderr.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct OrchestrationFailure {
    /// What went wrong, for people.
    pub reason: String,
}

impl OrchestrationFailure {
    /// A failure explained by `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Starts and stops projects' stacks (containers, processes, ...).
///
/// # Contract
///
/// - A call returns when the operation is done: `Ok` when the project is
///   up (or down), `Err` with a reason when it is not.
/// - Dropping the returned future cancels the operation: the process
///   manager drops it when the orchestration timeout passes, and a hub
///   that shuts down drops what is in flight. An implementation must stop
///   its work then (the shell adapter kills its process group).
/// - The process manager calls at most one operation per project at a
///   time, and never calls one again for a request it has already tried;
///   but a user may start a project again after a failure or an
///   interrupted start, so `start` and `stop` should be idempotent (like
///   `docker compose up -d` and `docker compose down`).
#[async_trait::async_trait]
pub trait Orchestrator: Send + Sync + 'static {
    /// Brings `project` up.
    ///
    /// # Errors
    /// [`OrchestrationFailure`] with the reason when it did not come up.
    async fn start(&self, project: &ProjectSpec) -> Result<(), OrchestrationFailure>;

    /// Brings `project` down.
    ///
    /// # Errors
    /// [`OrchestrationFailure`] with the reason when it did not go down.
    async fn stop(&self, project: &ProjectSpec) -> Result<(), OrchestrationFailure>;
}

/// An orchestrator that runs nothing and succeeds at once: the default, so
/// that a fresh hub moves projects through STARTING to RUNNING (and
/// STOPPING to STOPPED) without any setup.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopOrchestrator;

#[async_trait::async_trait]
impl Orchestrator for NoopOrchestrator {
    async fn start(&self, project: &ProjectSpec) -> Result<(), OrchestrationFailure> {
        tracing::debug!(project_id = %project.id, "noop orchestrator: nothing to start");
        Ok(())
    }

    async fn stop(&self, project: &ProjectSpec) -> Result<(), OrchestrationFailure> {
        tracing::debug!(project_id = %project.id, "noop orchestrator: nothing to stop");
        Ok(())
    }
}
