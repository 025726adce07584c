//! Orchestration: making a project's start, stop and restart requests
//! happen, through a process manager fed by the event feed.
//!
//! `StartProject` only records `ProjectStartRequested` (STARTING). The
//! [`ProcessManager`], a feed consumer active in one hub process at a time,
//! calls an [`Orchestrator`] for each request and records the outcome with
//! `CompleteStart` / `FailStart` (RUNNING / ERROR); stops and restarts
//! likewise. See [`ProcessManager`] for the crash and idempotency rules.
//!
//! Layout:
//! - `orchestrator`: the [`Orchestrator`] trait, [`ProjectSpec`],
//!   [`OrchestrationFailure`] and the [`NoopOrchestrator`].
//! - `shell`: [`ShellOrchestrator`], which runs configured command lines.
//! - `manager`: the [`ProcessManager`] feed consumer.
//! - `job`: the work on one request.
//! - `requests`: the `orchestration_requests` table.

mod job;
mod manager;
mod orchestrator;
mod requests;
mod shell;

pub use job::INTERRUPTED;
pub use manager::{OrchestrationConfig, ProcessManager};
pub use orchestrator::{NoopOrchestrator, OrchestrationFailure, Orchestrator, ProjectSpec};
pub use requests::RequestKey;
pub use shell::ShellOrchestrator;
