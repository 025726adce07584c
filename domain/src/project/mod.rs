//! The project aggregate: one software project managed by the hub.
//!
//! - [`aggregate`]: [`Project`], its state and the rules in `handle`.
//! - [`command`]: [`ProjectCommand`], what a caller asks for.
//! - [`event`]: [`ProjectEvent`], what was decided and is stored.
//! - [`error`]: [`ProjectError`], why a command was refused (or failed).
//! - [`services`]: [`ProjectLookup`], the interface for facts the aggregate
//!   cannot know by itself, wrapped in [`ProjectServices`].
//! - [`status`]: [`ProjectStatus`], where a project is in its lifecycle.
//! - [`lifecycle`]: start, stop, restart and delete as requests an
//!   orchestrator completes; [`PendingRequest`] names the one in progress.
//! - [`reason`]: [`FailureReason`], why a start or stop failed.
//! - [`upcast`]: stored events of older shapes rewritten into today's.

pub mod aggregate;
pub mod command;
pub mod error;
pub mod event;
pub mod lifecycle;
pub mod reason;
pub mod services;
pub mod status;
pub mod upcast;

#[cfg(test)]
mod tests;

pub use aggregate::Project;
pub use command::ProjectCommand;
pub use error::ProjectError;
pub use event::ProjectEvent;
pub use lifecycle::{PendingRequest, RequestKind};
pub use reason::FailureReason;
pub use services::{LookupError, ProjectLookup, ProjectServices};
pub use status::{ParseStatusError, ProjectStatus};
