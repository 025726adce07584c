//! Given / when / then tests of the project rules, the facts about other
//! projects written down as values, and (`reservation_trigger`) the stored
//! event JSON the reservation trigger in `migrations/0002` reads.

use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;

use super::*;
use crate::{NameError, PortRange, Ports, ProjectId, ProjectName, ProjectPath, Slug};

mod completion;
mod create;
mod history;
mod lifecycle;
mod rename;
mod reservation_trigger;
mod state;

/// A project's given / when / then. Commands that need no facts go in as
/// `command.into()`; a create or rename says what it knows with
/// `command.knowing(facts)`.
fn project() -> TestFramework<Project> {
    TestFramework::with(())
}

/// Nothing is in the way: no project holds the slug asked about, and the
/// first block of the default range is free.
fn free() -> Facts {
    Facts {
        slug_holder: None,
        free_ports: Some(first_block()),
    }
}

/// The slug asked about is held by `holder`; ports are free.
fn held_by(holder: ProjectId) -> Facts {
    Facts {
        slug_holder: Some(holder),
        ..free()
    }
}

/// No slug is held, and every block of ports is.
fn exhausted() -> Facts {
    Facts {
        free_ports: None,
        ..free()
    }
}

/// The project `events` rebuild.
fn replay(events: Vec<ProjectEvent>) -> Project {
    let mut project = Project::default();
    for event in events {
        project.apply(event);
    }
    project
}

fn first_block() -> Ports {
    PortRange::default().block(0).unwrap()
}

fn id() -> ProjectId {
    ProjectId::parse("6f1c2a9e-3b7d-4c1e-9a52-0d8e4f6b7c21").unwrap()
}

fn other_id() -> ProjectId {
    ProjectId::parse("0b6a6f0e-1d2c-4e5f-8a9b-c0d1e2f3a4b5").unwrap()
}

fn name(text: &str) -> ProjectName {
    ProjectName::parse(text).unwrap()
}

fn slug(text: &str) -> Slug {
    Slug::parse(text).unwrap()
}

fn path() -> ProjectPath {
    ProjectPath::parse("/srv/projects/my-app").unwrap()
}

fn create(text: &str) -> ProjectCommand {
    ProjectCommand::CreateProject {
        project_id: id(),
        name: name(text),
        path: path(),
    }
}

fn rename(text: &str) -> ProjectCommand {
    ProjectCommand::RenameProject { name: name(text) }
}

fn created() -> ProjectEvent {
    ProjectEvent::ProjectCreated {
        project_id: id(),
        name: name("My App"),
        slug: slug("my-app"),
        path: path(),
        ports: first_block(),
    }
}

fn start_requested() -> ProjectEvent {
    ProjectEvent::ProjectStartRequested {}
}

fn started() -> ProjectEvent {
    ProjectEvent::ProjectStarted {}
}

fn start_failed(reason: &str) -> ProjectEvent {
    ProjectEvent::ProjectStartFailed {
        reason: FailureReason::new(reason),
    }
}

fn stop_requested() -> ProjectEvent {
    ProjectEvent::ProjectStopRequested {}
}

fn restart_requested() -> ProjectEvent {
    ProjectEvent::ProjectRestartRequested {}
}

fn stopped() -> ProjectEvent {
    ProjectEvent::ProjectStopped {}
}

fn stop_failed(reason: &str) -> ProjectEvent {
    ProjectEvent::ProjectStopFailed {
        reason: FailureReason::new(reason),
    }
}

/// A project that was started through a request: created (1), start
/// requested (2), started (3).
fn running() -> Vec<ProjectEvent> {
    vec![created(), start_requested(), started()]
}

/// A project whose start failed: created (1), start requested (2), start
/// failed (3).
fn failed() -> Vec<ProjectEvent> {
    vec![created(), start_requested(), start_failed("exit code 1")]
}

/// `events` followed by `more`.
fn then(
    mut events: Vec<ProjectEvent>,
    more: impl IntoIterator<Item = ProjectEvent>,
) -> Vec<ProjectEvent> {
    events.extend(more);
    events
}

fn complete_start(request: u64) -> ProjectCommand {
    ProjectCommand::CompleteStart { request }
}

fn fail_start(request: u64, reason: &str) -> ProjectCommand {
    ProjectCommand::FailStart {
        request,
        reason: FailureReason::new(reason),
    }
}

fn complete_stop(request: u64) -> ProjectCommand {
    ProjectCommand::CompleteStop { request }
}

fn fail_stop(request: u64, reason: &str) -> ProjectCommand {
    ProjectCommand::FailStop {
        request,
        reason: FailureReason::new(reason),
    }
}

fn not_pending(request: u64, operation: &'static str) -> ProjectError {
    ProjectError::RequestNotPending { request, operation }
}

fn deleted() -> ProjectEvent {
    ProjectEvent::ProjectDeleted {}
}
