//! [`RunnerState`]: what a runner knows while it holds its consumer's
//! lock, and the only code that moves the checkpoint row.
//!
//! The checkpoint is kept in memory; the row follows it. It is behind only
//! after batches that wrote nothing (the delayed save: see
//! [`crate::feed::RunnerConfig::checkpoint_delay`]), and every batch that
//! writes, and every empty read, first brings it up to date
//! ([`RunnerState::save`]). Each move is a compare-and-set, which refuses
//! a row someone else moved (another runner, a rebuild):
//! [`StepError::LostCheckpoint`].

use std::time::{Duration, Instant};

use sqlx::PgConnection;

use super::StepError;
use crate::feed::checkpoint::{advance_checkpoint, load_checkpoint, CheckpointMove};
use crate::feed::event::FeedPosition;
use crate::feed::parked::has_parked;

/// A runner's consumer, its checkpoint in memory and in its row, and
/// whether it may have parked events.
#[derive(Debug)]
pub(super) struct RunnerState {
    consumer: String,
    /// The last event handled (or parked).
    checkpoint: FeedPosition,
    /// Events handled in total, as the row will count them.
    handled: i64,
    /// What the checkpoint row holds.
    saved: Saved,
    /// Whether the consumer may have parked events: then the events of
    /// their aggregates are held back, which only a transaction can do.
    /// Only this runner parks events for its consumer while it holds the
    /// lock (retries and rebuilds only remove them), so once a batch has
    /// seen none it stays false until this runner parks one.
    may_hold_back: bool,
}

/// What the checkpoint row holds, and since when progress after it waits
/// to be saved.
///
/// Saving such progress late is safe: a consumer that writes nothing may
/// handle the same events again (see
/// [`crate::feed::FeedConsumer::writes`]), which is all a crash or a
/// takeover before the save causes.
#[derive(Clone, Copy, Debug)]
struct Saved {
    at: FeedPosition,
    handled: i64,
    pending_since: Option<Instant>,
}

impl Saved {
    /// The row holds `at` and `handled`; nothing is pending.
    fn at(at: FeedPosition, handled: i64) -> Self {
        Self {
            at,
            handled,
            pending_since: None,
        }
    }
}

impl RunnerState {
    /// Reads `consumer`'s checkpoint (creating its row if needed) and
    /// whether it has parked events; every consumer may have some:
    /// unreadable events are parked whatever the policy.
    pub(super) async fn load(conn: &mut PgConnection, consumer: &str) -> Result<Self, sqlx::Error> {
        let (checkpoint, handled) = load_checkpoint(&mut *conn, consumer).await?;
        let may_hold_back = has_parked(conn, consumer).await?;
        Ok(Self {
            consumer: consumer.to_owned(),
            checkpoint,
            handled,
            saved: Saved::at(checkpoint, handled),
            may_hold_back,
        })
    }

    /// The last event handled (or parked).
    pub(super) fn checkpoint(&self) -> FeedPosition {
        self.checkpoint
    }

    /// Events handled in total.
    pub(super) fn handled(&self) -> i64 {
        self.handled
    }

    /// Whether the consumer may have parked events.
    pub(super) fn may_hold_back(&self) -> bool {
        self.may_hold_back
    }

    /// Records whether the consumer may have parked events: set before
    /// anything that may park one, cleared by a batch that found none.
    pub(super) fn set_may_hold_back(&mut self, may: bool) {
        self.may_hold_back = may;
    }

    /// Brings the checkpoint row up to the checkpoint (one
    /// compare-and-set), if it is behind.
    pub(super) async fn save(&mut self, conn: &mut PgConnection) -> Result<(), StepError> {
        if self.saved.at == self.checkpoint {
            return Ok(());
        }
        let count = (self.handled - self.saved.handled).max(0);
        cas(conn, &self.consumer, self.saved.at, self.checkpoint, count).await?;
        self.saved = Saved::at(self.checkpoint, self.handled);
        Ok(())
    }

    /// Records a batch that wrote nothing, up to `last` with `count`
    /// events, in memory; the row follows once progress has waited
    /// `delay` since the first batch left unsaved.
    pub(super) async fn handled_without_writes(
        &mut self,
        conn: &mut PgConnection,
        last: FeedPosition,
        count: usize,
        delay: Duration,
    ) -> Result<(), StepError> {
        self.checkpoint = last;
        self.handled += as_count(count);
        let pending_since = *self.saved.pending_since.get_or_insert_with(Instant::now);
        if pending_since.elapsed() >= delay {
            self.save(conn).await?;
        }
        Ok(())
    }

    /// The compare-and-set that moves the (saved) row to `to`, adding
    /// `count` events, for a consumer's own statement to run.
    pub(super) fn move_to(&self, to: FeedPosition, count: usize) -> CheckpointMove<'_> {
        CheckpointMove::new(&self.consumer, self.checkpoint, to, as_count(count))
    }

    /// Moves the (saved) row to `to`, adding `count` events, inside the
    /// batch's transaction `tx`; [`RunnerState::committed`] once it
    /// commits.
    pub(super) async fn move_in(
        &self,
        tx: &mut PgConnection,
        to: FeedPosition,
        count: usize,
    ) -> Result<(), StepError> {
        cas(tx, &self.consumer, self.checkpoint, to, as_count(count)).await
    }

    /// The row was moved to `to`, adding `count` events, and committed.
    pub(super) fn committed(&mut self, to: FeedPosition, count: usize) {
        self.checkpoint = to;
        self.handled += as_count(count);
        self.saved = Saved::at(to, self.handled);
    }
}

fn as_count(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Moves `consumer`'s row from `from` to `to`, refusing when someone else
/// moved it.
async fn cas(
    conn: &mut PgConnection,
    consumer: &str,
    from: FeedPosition,
    to: FeedPosition,
    count: i64,
) -> Result<(), StepError> {
    if advance_checkpoint(conn, consumer, from, to, count).await? {
        Ok(())
    } else {
        Err(StepError::LostCheckpoint)
    }
}
