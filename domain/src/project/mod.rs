//! The project aggregate: one software project managed by the hub.
//!
//! - [`aggregate`]: [`Project`], its state and the rules in
//!   [`Project::decide`].
//! - [`command`]: [`ProjectCommand`], what a caller asks for, and
//!   [`Decide`], that command with the facts it is decided on.
//! - [`facts`]: [`Question`] and [`Facts`], what a decision needs to know
//!   about other projects, looked up before deciding.
//! - [`event`]: [`ProjectEvent`], what was decided and is stored.
//! - [`error`]: [`ProjectError`], why a command was refused.
//! - [`status`]: [`ProjectStatus`], where a project is in its lifecycle.
//! - [`lifecycle`]: start, stop, restart and delete as requests an
//!   orchestrator completes; [`PendingRequest`] names the one in progress.
//! - [`reason`]: [`FailureReason`], why a start or stop failed.
//! - [`upcast`]: stored events of older shapes rewritten into today's.

pub mod aggregate;
pub mod command;
pub mod error;
pub mod event;
pub mod facts;
pub mod lifecycle;
pub mod reason;
pub mod status;
pub mod upcast;

#[cfg(test)]
mod tests;

pub use aggregate::Project;
pub use command::{Decide, ProjectCommand};
pub use error::ProjectError;
pub use event::ProjectEvent;
pub use facts::{Facts, Question};
pub use lifecycle::{PendingRequest, RequestKind};
pub use reason::FailureReason;
pub use status::{ParseStatusError, ProjectStatus};
