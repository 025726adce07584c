//! Read models of the hub, fed from the event store through the event feed
//! (each with its own checkpoint, so each can be rebuilt by replay), and the
//! queries that read them.
//!
//! Layout:
//! - `projects`: the `projects` table and its projection (statistics are a
//!   view over it).
//! - `event_log`: the queryable event history and its projection.
//! - `queries`: [`ReadModels`], every read the API makes.
//! - `cursor`: opaque pagination cursors.
//! - `subject`: NATS subject patterns and their safe SQL forms.

pub mod cursor;
pub mod event_log;
pub mod projects;
pub mod queries;
pub mod subject;

pub use event_log::EventLogProjection;
pub use projects::{ProjectRow, ProjectsProjection};
pub use queries::{
    EventFilter, EventRow, Page, ProjectFilter, ProjectStats, QueryError, ReadModels,
};
pub use subject::{SubjectError, SubjectPattern};
