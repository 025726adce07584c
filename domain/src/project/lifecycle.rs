//! Starting, stopping, restarting and deleting: the project's lifecycle as
//! requests that an orchestrator completes.
//!
//! | status | command | records | new status |
//! | --- | --- | --- | --- |
//! | STOPPED, ERROR | `StartProject` | `ProjectStartRequested` | STARTING |
//! | STARTING | `CompleteStart` | `ProjectStarted` | RUNNING |
//! | STARTING | `FailStart` | `ProjectStartFailed` | ERROR |
//! | RUNNING, ERROR | `StopProject` | `ProjectStopRequested` | STOPPING |
//! | RUNNING, ERROR | `RestartProject` | `ProjectRestartRequested` | STOPPING |
//! | STOPPING (stop) | `CompleteStop` | `ProjectStopped` | STOPPED |
//! | STOPPING (restart) | `CompleteStop` | `ProjectStopped`, `ProjectStartRequested` | STARTING |
//! | STOPPING | `FailStop` | `ProjectStopFailed` | ERROR |
//! | STOPPED, ERROR | `DeleteProject` | `ProjectDeleted` | DELETED |
//!
//! Everything else is refused: starting a STARTING or RUNNING project,
//! stopping a STOPPING or STOPPED one, deleting one that is STARTING,
//! RUNNING or STOPPING, and any start, stop, restart or delete while a
//! request is in progress. Renaming is allowed in every live status.
//!
//! A request is named by the sequence of the event that made it (the
//! aggregate's version right after it). Completions carry that number and
//! are accepted only for the request still pending, so a completion that
//! arrives late or twice is rejected with
//! [`ProjectError::RequestNotPending`] instead of being applied again.

use serde::{Deserialize, Serialize};

use crate::project::aggregate::State;
use crate::project::{FailureReason, ProjectError, ProjectEvent, ProjectStatus};

/// What a pending request asks the orchestrator to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestKind {
    /// Start the project (`ProjectStartRequested`).
    Start,
    /// Stop the project (`ProjectStopRequested`).
    Stop,
    /// Stop the project, then request a start (`ProjectRestartRequested`).
    Restart,
}

impl RequestKind {
    /// `"start"`, `"stop"` or `"restart"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
        }
    }

    /// The kind of request an event makes, if it makes one.
    pub fn requested_by(event: &ProjectEvent) -> Option<Self> {
        match event {
            ProjectEvent::ProjectStartRequested {} => Some(Self::Start),
            ProjectEvent::ProjectStopRequested {} => Some(Self::Stop),
            ProjectEvent::ProjectRestartRequested {} => Some(Self::Restart),
            _ => None,
        }
    }
}

/// A start, stop or restart that was requested and not completed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingRequest {
    /// The sequence of the event that made the request; completions name it.
    pub sequence: u64,
    /// What was requested.
    pub kind: RequestKind,
}

/// `StartProject`: from STOPPED or ERROR.
pub(super) fn start(state: &State) -> Result<ProjectEvent, ProjectError> {
    match state.status {
        ProjectStatus::Stopped | ProjectStatus::Error => Ok(ProjectEvent::ProjectStartRequested {}),
        ProjectStatus::Starting => Err(ProjectError::AlreadyStarting),
        ProjectStatus::Stopping => Err(ProjectError::AlreadyStopping),
        ProjectStatus::Running => Err(ProjectError::AlreadyRunning),
        // `changeable` has already refused deleted projects.
        ProjectStatus::Deleted => Err(ProjectError::Deleted),
    }
}

/// `StopProject`: from RUNNING or ERROR.
pub(super) fn stop(state: &State) -> Result<ProjectEvent, ProjectError> {
    stoppable(state).map(|()| ProjectEvent::ProjectStopRequested {})
}

/// `RestartProject`: from RUNNING or ERROR, like a stop.
pub(super) fn restart(state: &State) -> Result<ProjectEvent, ProjectError> {
    stoppable(state).map(|()| ProjectEvent::ProjectRestartRequested {})
}

fn stoppable(state: &State) -> Result<(), ProjectError> {
    match state.status {
        ProjectStatus::Running | ProjectStatus::Error => Ok(()),
        ProjectStatus::Stopped => Err(ProjectError::NotRunning),
        ProjectStatus::Starting => Err(ProjectError::AlreadyStarting),
        ProjectStatus::Stopping => Err(ProjectError::AlreadyStopping),
        ProjectStatus::Deleted => Err(ProjectError::Deleted),
    }
}

/// `DeleteProject`: from STOPPED or ERROR; never while anything runs or is
/// on its way up or down.
pub(super) fn delete(state: &State) -> Result<ProjectEvent, ProjectError> {
    match state.status {
        ProjectStatus::Stopped | ProjectStatus::Error => Ok(ProjectEvent::ProjectDeleted {}),
        ProjectStatus::Running => Err(ProjectError::StillRunning),
        ProjectStatus::Starting => Err(ProjectError::AlreadyStarting),
        ProjectStatus::Stopping => Err(ProjectError::AlreadyStopping),
        ProjectStatus::Deleted => Err(ProjectError::Deleted),
    }
}

/// The pending request if it is `request` and one of `kinds`.
fn pending(
    state: &State,
    request: u64,
    kinds: &[RequestKind],
    operation: &'static str,
) -> Result<RequestKind, ProjectError> {
    match state.pending {
        Some(p) if p.sequence == request && kinds.contains(&p.kind) => Ok(p.kind),
        _ => Err(ProjectError::RequestNotPending { request, operation }),
    }
}

/// `CompleteStart`.
pub(super) fn complete_start(state: &State, request: u64) -> Result<ProjectEvent, ProjectError> {
    pending(state, request, &[RequestKind::Start], "start")?;
    Ok(ProjectEvent::ProjectStarted {})
}

/// `FailStart`.
pub(super) fn fail_start(
    state: &State,
    request: u64,
    reason: FailureReason,
) -> Result<ProjectEvent, ProjectError> {
    pending(state, request, &[RequestKind::Start], "start")?;
    Ok(ProjectEvent::ProjectStartFailed { reason })
}

const STOPS: [RequestKind; 2] = [RequestKind::Stop, RequestKind::Restart];

/// `CompleteStop`: a restart's stop also requests the start, in the same
/// commit.
pub(super) fn complete_stop(
    state: &State,
    request: u64,
) -> Result<Vec<ProjectEvent>, ProjectError> {
    Ok(match pending(state, request, &STOPS, "stop")? {
        RequestKind::Restart => vec![
            ProjectEvent::ProjectStopped {},
            ProjectEvent::ProjectStartRequested {},
        ],
        _ => vec![ProjectEvent::ProjectStopped {}],
    })
}

/// `FailStop`: a failed restart does not go on to start.
pub(super) fn fail_stop(
    state: &State,
    request: u64,
    reason: FailureReason,
) -> Result<ProjectEvent, ProjectError> {
    pending(state, request, &STOPS, "stop")?;
    Ok(ProjectEvent::ProjectStopFailed { reason })
}

/// Applies a lifecycle event recorded as the aggregate's event number
/// `sequence`.
///
/// `ProjectStarted` and `ProjectStopped` clear any pending request, so
/// histories from before orchestration (those events without a request
/// before them) replay to RUNNING and STOPPED as they always did.
pub(super) fn apply(state: &mut State, sequence: u64, event: ProjectEvent) {
    if let Some(kind) = RequestKind::requested_by(&event) {
        state.status = match kind {
            RequestKind::Start => ProjectStatus::Starting,
            RequestKind::Stop | RequestKind::Restart => ProjectStatus::Stopping,
        };
        state.pending = Some(PendingRequest { sequence, kind });
        return;
    }
    let status = match event {
        ProjectEvent::ProjectStarted {} => ProjectStatus::Running,
        ProjectEvent::ProjectStopped {} => ProjectStatus::Stopped,
        ProjectEvent::ProjectStartFailed { .. } | ProjectEvent::ProjectStopFailed { .. } => {
            ProjectStatus::Error
        }
        ProjectEvent::ProjectDeleted {} => ProjectStatus::Deleted,
        // Handled by the aggregate, or not lifecycle events at all.
        ProjectEvent::ProjectCreated { .. }
        | ProjectEvent::ProjectRenamed { .. }
        | ProjectEvent::ProjectStartRequested {}
        | ProjectEvent::ProjectStopRequested {}
        | ProjectEvent::ProjectRestartRequested {} => return,
    };
    state.status = status;
    state.pending = None;
}
