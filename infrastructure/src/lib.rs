//! The hub's infrastructure: PostgreSQL (connection, migrations, the
//! postgres-es event store and its command bus), the gap-safe event feed that
//! drives read models and the relay, and the lookups of the facts the domain
//! decides on.
//!
//! Layout:
//! - `db`: pool, migrations, ping.
//! - `error`: [`InfraError`] and the "database unavailable" classification.
//! - `metadata`: correlation, causation and origin carried by every event.
//! - `lookup`: slug holders and free ports, the facts a `Project` decides
//!   on, looked up before deciding.
//! - `append`: [`append::Appender`], group commit: concurrent commits appended
//!   in shared transactions, each with its own outcome.
//! - `execute`: the one load-decide-commit loop (optimistic concurrency,
//!   retries of lost races) and [`CommandError`].
//! - `commands`: [`CommandBus`], project commands through that loop.
//! - `integration`: [`IntegrationPublisher`], integration events through
//!   that loop.
//! - `feed`: the event feed, its consumers and their runners.
//! - `nats`: the JetStream stream, the envelope and the outbox relay.
//! - `upcast`: stored events of older shapes read in today's shape.
//! - `redact`: URLs shown without their credentials.
//! - `orchestration`: the process manager that runs start/stop requests
//!   through an [`orchestration::Orchestrator`] (`noop` or `shell`).

pub mod append;
pub mod commands;
pub mod db;
pub mod error;
mod execute;
pub mod feed;
pub mod integration;
pub mod lookup;
pub mod metadata;
pub mod nats;
pub mod orchestration;
pub mod redact;
pub mod upcast;

pub use commands::{CommandBus, Executed};
pub use error::InfraError;
pub use execute::CommandError;
pub use integration::{IntegrationPublisher, PublishError, Recorded};
pub use metadata::{CommandMetadata, Origin};
