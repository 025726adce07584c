//! Given / when / then tests of the project rules, against an in-memory
//! lookup, and (`reservation_trigger`) the stored event JSON the
//! reservation trigger in `migrations/0002` reads.

use std::collections::HashMap;

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

/// An in-memory [`ProjectLookup`] whose answers each test sets up.
#[derive(Clone)]
struct FakeLookup {
    slug_holders: HashMap<String, ProjectId>,
    free_ports: Option<Ports>,
    broken: bool,
}

impl FakeLookup {
    /// No slug is held and the first block of the default range is free.
    fn new() -> Self {
        Self {
            slug_holders: HashMap::new(),
            free_ports: Some(first_block()),
            broken: false,
        }
    }

    fn with_slug_held(mut self, slug: &str, holder: ProjectId) -> Self {
        self.slug_holders.insert(slug.to_owned(), holder);
        self
    }

    fn with_ports_exhausted(mut self) -> Self {
        self.free_ports = None;
        self
    }

    /// Every lookup fails, as if the database were down.
    fn broken(mut self) -> Self {
        self.broken = true;
        self
    }

    fn check(&self, what: &'static str) -> Result<(), LookupError> {
        if self.broken {
            Err(LookupError::new(what, "connection refused"))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl ProjectLookup for FakeLookup {
    async fn slug_holder(&self, slug: &Slug) -> Result<Option<ProjectId>, LookupError> {
        self.check("the slug holder")?;
        Ok(self.slug_holders.get(slug.as_str()).copied())
    }

    async fn free_ports(&self, _project_id: ProjectId) -> Result<Option<Ports>, LookupError> {
        self.check("free ports")?;
        Ok(self.free_ports)
    }
}

fn given(lookup: FakeLookup) -> TestFramework<Project> {
    TestFramework::with(ProjectServices::new(lookup))
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
