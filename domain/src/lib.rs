//! The hub's domain: what a project is, which commands it accepts and which
//! events it records. Everything here is pure: no database, no network, no
//! runtime. Facts the aggregate cannot know by itself (is a slug taken? which
//! ports are free?) are looked up by the caller before deciding, and come
//! in with the command as [`Facts`]: the aggregate says which it needs
//! ([`Project::question`]).
//!
//! Layout:
//! - [`ids`]: [`ProjectId`], the UUID newtype that names a project.
//! - [`name`]: [`ProjectName`] (what people type) and [`Slug`] (what it
//!   becomes in URLs and reservations).
//! - [`path`]: [`ProjectPath`], a normalized absolute directory.
//! - [`ports`]: [`Ports`], the block of four ports a project owns, and the
//!   [`PortRange`] such blocks are carved from.
//! - [`project`]: the [`Project`] aggregate with its commands, events,
//!   errors, status and the facts about other projects it decides on.
//! - [`integration`]: the [`IntegrationEvent`] aggregate, events clients
//!   publish through the hub on a subject of their own.
//! - [`subject`]: [`SubjectPattern`] and [`SubjectFilter`], how clients
//!   select events by subject.

#![warn(missing_docs)]

pub mod ids;
pub mod integration;
pub mod name;
pub mod path;
pub mod ports;
pub mod project;
pub mod subject;

pub use ids::{IdError, ProjectId};
pub use integration::{
    EventPayload, EventSubject, IntegrationCommand, IntegrationError, IntegrationEvent,
    IntegrationFact,
};
pub use name::{NameError, ProjectName, Slug};
pub use path::{PathError, ProjectPath};
pub use ports::{PortRange, PortRangeError, Ports};
pub use project::{
    Decide, Facts, FailureReason, ParseStatusError, PendingRequest, Project, ProjectCommand,
    ProjectError, ProjectEvent, ProjectStatus, Question, RequestKind,
};
pub use subject::{SubjectError, SubjectFilter, SubjectPattern};
