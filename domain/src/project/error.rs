//! Why a project command did not produce events.

use crate::NameError;

/// Why a command was refused: the caller asked for something the project's
/// state (or another project) does not allow, and the message says what to
/// do instead.
///
/// Only rejections live here. The decision awaits no I/O, so it cannot
/// fail for the system's sake; a failed lookup before it is the command
/// bus's error.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ProjectError {
    /// The command targets a project that was never created.
    #[error("no project exists with this id; create it first")]
    NotFound,
    /// `CreateProject` for an id that is already used.
    #[error("a project with this id already exists; create the new project with a new id")]
    AlreadyExists,
    /// Another live project already has the slug the name produces.
    #[error("another project already uses the slug '{slug}'; choose another name")]
    NameTaken {
        /// The contested slug.
        slug: String,
    },
    /// The name cannot be turned into a slug.
    #[error(transparent)]
    InvalidName(NameError),
    /// `StartProject` on a running project.
    #[error("the project is already running, so it cannot be started again")]
    AlreadyRunning,
    /// `StartProject`, `StopProject`, `RestartProject` or `DeleteProject`
    /// while a start is in progress.
    #[error("the project is already starting; wait until it is RUNNING (or ERROR) and try again")]
    AlreadyStarting,
    /// `StartProject`, `StopProject`, `RestartProject` or `DeleteProject`
    /// while a stop (or the stop of a restart) is in progress.
    #[error("the project is already stopping; wait until it is STOPPED (or ERROR) and try again")]
    AlreadyStopping,
    /// `StopProject` or `RestartProject` on a stopped project.
    #[error("the project is not running, so it cannot be stopped or restarted; start it instead")]
    NotRunning,
    /// Any command on a deleted project.
    #[error("the project was deleted; it can be read but not changed")]
    Deleted,
    /// `DeleteProject` on a running project.
    #[error("the project is still running; stop the project before deleting it")]
    StillRunning,
    /// A completion (`CompleteStart`, `FailStart`, `CompleteStop`,
    /// `FailStop`) for a request that is not the project's pending one of
    /// that kind: it was already completed (a late or duplicate
    /// completion), or never existed.
    #[error("request {request} is not a pending {operation} of this project; it was already completed or never made")]
    RequestNotPending {
        /// The request the completion named (the sequence of its event).
        request: u64,
        /// `"start"` or `"stop"`.
        operation: &'static str,
    },
    /// Every block of four ports in the range is held by a live project.
    #[error("no free block of four ports is left in the configured range; delete a project or widen HUB_PORT_RANGE")]
    PortsExhausted,
}
