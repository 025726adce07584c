//! The event feed: a catch-up reader of the whole store in commit-safe order.
//!
//! Consumers (read models, the NATS relay, process managers) implement
//! [`FeedConsumer`] and are driven by [`spawn_runner`]: batches in feed
//! order, each one's writes committed with its checkpoint (one statement
//! or one transaction; a consumer that writes nothing has its checkpoint
//! saved after its batches, at most `checkpoint_delay` late), exactly one active
//! runner per consumer across processes (a PostgreSQL advisory lock held by
//! the runner's own connection), retries with backoff on failure, and a
//! [`PoisonPolicy`] for an event the consumer keeps failing on.
//!
//! How a runner works, in order, is in `runner`'s module docs: start
//! there, then read its modules in the order they name.
//!
//! Layout:
//! - `consumer`: [`FeedConsumer`], [`RunnerConfig`] and [`ConsumerStatus`].
//! - `event`: [`StoredEvent`], [`FeedPosition`], the gap-safe read and the
//!   read of one aggregate's history ([`read_aggregate`]).
//! - `fence`: below which the feed reads, and [`fence_holders`], the
//!   transactions that hold it back.
//! - `signal`: [`AppendSignal`], the in-process wake-up of the runners.
//! - `shared`: the window of recent events the runners of a process read
//!   through, so that runners woken together query the log once.
//! - `checkpoint`: a consumer's checkpoint row: its load and its
//!   compare-and-set ([`advance_checkpoint`], [`CheckpointMove`]), also
//!   inside a consumer's own statement.
//! - `runner`: [`spawn_runner`] and [`FeedHandle`]; the loop of sessions
//!   (lock, state, batches, retries), each batch's plan and the search for
//!   a poison event.
//! - `poison`: [`PoisonPolicy`], [`HaltedOn`] and [`is_outage`] (an outage
//!   is never treated as a poison event).
//! - `parked`: the parked events' table: how events are parked and held
//!   back, listing, counting, [`retry_parked`] and [`skip_parked`].

mod checkpoint;
mod consumer;
mod event;
mod fence;
mod parked;
mod poison;
mod runner;
mod shared;
mod signal;

pub use checkpoint::{advance_checkpoint, checkpoint_cte, CheckpointMove};
pub use consumer::{ConsumerError, ConsumerStatus, FeedConsumer, RunnerConfig};
pub use event::{
    consumer_lag, last_readable, position_of, read_after, read_aggregate, FeedPosition, StoredEvent,
};
pub use fence::{fence_holders, FenceHolder};
pub use parked::{
    first_parked_events, held_back, lock_parked, park_unreadable_in_replay, parked_counts,
    parked_events, retry_parked, skip_parked, HeldBack, ParkedEvent, RetryError, RetryReport,
    SkipReport,
};
pub use poison::{is_outage, HaltedOn, PoisonPolicy};
pub use runner::{spawn_runner, FeedHandle};
pub use signal::AppendSignal;
