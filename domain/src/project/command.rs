//! What a caller can ask of a project ([`ProjectCommand`]), and what the
//! aggregate decides on ([`Decide`]: the command with the facts it needs).

use crate::project::{Facts, FailureReason};
use crate::{ProjectId, ProjectName, ProjectPath};

/// A request to change a project. Its values are already parsed, so the
/// decision is only whether the request fits the project's state (and, for
/// a create or rename, the [`Facts`] about other projects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectCommand {
    /// Register a new project; the hub derives its slug and reserves its
    /// ports.
    CreateProject {
        /// The id the new project will have; also its aggregate id.
        project_id: ProjectId,
        /// Its display name.
        name: ProjectName,
        /// The directory it lives in.
        path: ProjectPath,
    },
    /// Ask for a stopped (or failed) project to be started. Records
    /// `ProjectStartRequested`; the orchestration process manager does the
    /// work and completes the request with [`ProjectCommand::CompleteStart`]
    /// or [`ProjectCommand::FailStart`].
    StartProject,
    /// Ask for a running (or failed) project to be stopped. Records
    /// `ProjectStopRequested`, completed by [`ProjectCommand::CompleteStop`]
    /// or [`ProjectCommand::FailStop`].
    StopProject,
    /// Ask for a running (or failed) project to be stopped and then started
    /// again. Records `ProjectRestartRequested`: a stop request whose
    /// successful completion also requests the start (see
    /// [`ProjectCommand::CompleteStop`]).
    RestartProject,
    /// The start requested by the event with sequence `request` succeeded.
    /// Sent by the process manager, not by clients.
    CompleteStart {
        /// Sequence of the `ProjectStartRequested` event this completes.
        /// A completion for any other request is rejected, so a late or
        /// repeated completion cannot be applied twice.
        request: u64,
    },
    /// The start requested by the event with sequence `request` failed.
    FailStart {
        /// Sequence of the `ProjectStartRequested` event this completes.
        request: u64,
        /// Why it failed; shown to users as the project's last error.
        reason: FailureReason,
    },
    /// The stop (or the stop half of a restart) requested by the event with
    /// sequence `request` succeeded. For a restart this records
    /// `ProjectStopped` and `ProjectStartRequested` together, so the start
    /// half cannot be lost between two commits.
    CompleteStop {
        /// Sequence of the `ProjectStopRequested` or
        /// `ProjectRestartRequested` event this completes.
        request: u64,
    },
    /// The stop (or the stop half of a restart) requested by the event with
    /// sequence `request` failed; a restart does not go on to start.
    FailStop {
        /// Sequence of the `ProjectStopRequested` or
        /// `ProjectRestartRequested` event this completes.
        request: u64,
        /// Why it failed.
        reason: FailureReason,
    },
    /// Give the project a new name (and so a new slug).
    RenameProject {
        /// The new display name.
        name: ProjectName,
    },
    /// Delete a stopped (or failed) project; its slug and ports become free.
    DeleteProject,
}

impl ProjectCommand {
    /// The variant's name (`StartProject`), for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateProject { .. } => "CreateProject",
            Self::StartProject => "StartProject",
            Self::StopProject => "StopProject",
            Self::RestartProject => "RestartProject",
            Self::CompleteStart { .. } => "CompleteStart",
            Self::FailStart { .. } => "FailStart",
            Self::CompleteStop { .. } => "CompleteStop",
            Self::FailStop { .. } => "FailStop",
            Self::RenameProject { .. } => "RenameProject",
            Self::DeleteProject => "DeleteProject",
        }
    }

    /// This command, to be decided knowing `facts` (the answer to
    /// [`Project::question`](crate::Project::question)).
    pub fn knowing(self, facts: Facts) -> Decide {
        Decide {
            command: self,
            facts,
        }
    }
}

/// A command with the facts about other projects that its decision needs:
/// the cqrs-es command of the [`Project`](crate::Project) aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decide {
    /// What the caller asks for.
    pub command: ProjectCommand,
    /// What was looked up for it.
    pub facts: Facts,
}

impl From<ProjectCommand> for Decide {
    /// A command decided knowing nothing about other projects: right for
    /// every command but a create and a rename to a new slug.
    fn from(command: ProjectCommand) -> Self {
        command.knowing(Facts::default())
    }
}
