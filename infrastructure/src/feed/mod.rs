//! The event feed: a catch-up reader of the whole store in commit-safe order.
//!
//! Consumers (read models, the NATS relay, process managers) implement
//! [`FeedConsumer`] and are driven by [`spawn_runner`]: one transaction per
//! batch, the checkpoint written in the same transaction, exactly one active
//! runner per consumer across processes (a PostgreSQL advisory lock held by
//! the runner's own connection), retries with backoff on failure.
//!
//! Layout:
//! - `event`: [`StoredEvent`], [`FeedPosition`] and the gap-safe read.
//! - `runner`: the runner, its status and the in-process wake-up signal.

mod event;
mod runner;

pub use event::{consumer_lag, position_of, read_after, FeedPosition, StoredEvent};
pub use runner::{
    spawn_runner, AppendSignal, ConsumerError, ConsumerStatus, FeedConsumer, FeedHandle,
    RunnerConfig,
};
