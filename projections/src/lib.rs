//! Read models of the hub, fed from the event store through the event feed
//! (each with its own checkpoint, so each can be rebuilt by replay), and the
//! queries that read them.
//!
//! Layout:
//! - `projects`: the `projects` table and its projection (statistics are a
//!   view over it), and [`ProjectVersions`], one project's row at each
//!   version.
//! - `event_log`: the queryable event history and its projection; its
//!   rows read back as the one view of an event, `infrastructure::nats::Envelope`.
//! - `queries`: [`ReadModels`], every read the API makes.
//! - `event_list`: the event log's filtered pages, and why each stays
//!   bounded as the log grows.
//! - `board`: [`ReadModels::board`], every live project and the feed
//!   position the rows are at, read together.
//! - `since`: where a replay of the events recorded since a time starts
//!   ([`ReadModels::replay_start_since`]).
//! - `rebuild`: [`rebuild()`], a read model rebuilt beside the live one and
//!   switched to atomically.
//! - `status`: [`status::list`], checkpoint, lag, parked events, code
//!   version and state of each read model; [`status::outdated`].
//! - `read_your_writes`: [`ReadYourWrites`], an answer to a write waiting
//!   until the read models show it; `progress`: [`RunnerProgress`], a read
//!   model's runner as this process sees it, which that waits on; `recent`:
//!   the latest committed project rows, in memory.
//! - `cursor`: opaque pagination cursors.

pub mod board;
pub mod cursor;
mod event_list;
pub mod event_log;
mod progress;
pub mod projects;
pub mod queries;
mod read_your_writes;
pub mod rebuild;
pub mod recent;
mod since;
pub mod status;

pub use board::Board;
pub use event_log::EventLogProjection;
pub use progress::{Passed, RunnerProgress};
pub use projects::{ProjectRow, ProjectVersions, ProjectsProjection};
pub use queries::{
    EventFilter, Page, ProjectFilter, ProjectStats, QueryError, ReadModels, DEFAULT_PAGE_SCAN,
};
pub use read_your_writes::{ReadModelRunners, ReadYourWrites};
pub use rebuild::{rebuild, Progress, RebuildError, RebuildOptions, RebuildOutcome, Rebuildable};
pub use recent::RecentRows;
pub use status::{ConsumerLine, ProjectionState, ProjectionStatus};
