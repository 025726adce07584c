//! The event feed: a catch-up reader of the whole store in commit-safe order.
//!
//! Consumers (read models, the NATS relay, process managers) implement
//! [`FeedConsumer`] and are driven by [`spawn_runner`]: one transaction per
//! batch, the checkpoint written in the same transaction, exactly one active
//! runner per consumer across processes (a PostgreSQL advisory lock held by
//! the runner's own connection), retries with backoff on failure, and a
//! [`PoisonPolicy`] for an event the consumer keeps failing on.
//!
//! Layout:
//! - `consumer`: [`FeedConsumer`], [`RunnerConfig`] and [`ConsumerStatus`].
//! - `event`: [`StoredEvent`], [`FeedPosition`], the gap-safe read and the
//!   read of one aggregate's history ([`read_aggregate`]).
//! - `fence`: below which the feed reads, and [`fence_holders`], the
//!   transactions that hold it back.
//! - `runner`: the runner's loop (lock, retries, backoff) and the in-process
//!   wake-up signal.
//! - `batch`: one batch: read, handle, move the checkpoint.
//! - `one_statement`: the checkpoint's compare-and-set ([`advance_checkpoint`],
//!   [`CheckpointMove`]), also inside a consumer's own statement.
//! - `shared`: the window of recent events the runners of a process read
//!   through, so that runners woken together query the log once.
//! - `isolate`: finding the event a consumer keeps failing on.
//! - `poison`: [`PoisonPolicy`], [`HaltedOn`] and [`is_outage`] (an outage
//!   is never treated as a poison event).
//! - `parked`: the parked events' table: how events are parked and held
//!   back, listing, counting, [`retry_parked`] and [`skip_parked`].

mod batch;
mod consumer;
mod event;
mod fence;
mod isolate;
mod one_statement;
mod parked;
mod poison;
mod runner;
mod shared;

pub use consumer::{ConsumerError, ConsumerStatus, FeedConsumer, RunnerConfig};
pub use event::{
    consumer_lag, last_readable, position_of, read_after, read_aggregate, FeedPosition, StoredEvent,
};
pub use fence::{fence_holders, FenceHolder};
pub use one_statement::{advance_checkpoint, checkpoint_cte, CheckpointMove};
pub use parked::{
    first_parked_events, held_back, lock_parked, park_unreadable_in_replay, parked_counts,
    parked_events, retry_parked, skip_parked, HeldBack, ParkedEvent, RetryError, RetryReport,
    SkipReport,
};
pub use poison::{is_outage, HaltedOn, PoisonPolicy};
pub use runner::{spawn_runner, AppendSignal, FeedHandle};
