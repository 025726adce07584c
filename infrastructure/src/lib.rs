//! The hub's infrastructure: PostgreSQL (connection, migrations, the
//! postgres-es event store and its command bus), the gap-safe event feed that
//! drives read models and the relay, and the lookups the domain needs.
//!
//! Layout:
//! - `db`: pool, migrations, ping.
//! - `error`: [`InfraError`] and the "database unavailable" classification.
//! - `metadata`: correlation, causation and origin carried by every event.
//! - `lookup`: slug holders and free ports, for the `Project` aggregate.
//! - `commands`: [`CommandBus`], load/decide/commit with optimistic concurrency.
//! - `feed`: the event feed, its consumers and their runners.
//! - `nats`: the JetStream stream, the envelope and the outbox relay.

pub mod commands;
pub mod db;
pub mod error;
pub mod feed;
pub mod lookup;
pub mod metadata;
pub mod nats;

pub use commands::{CommandBus, CommandError, Executed};
pub use error::InfraError;
pub use metadata::{CommandMetadata, Origin};
