//! One batch of a runner: read after the checkpoint, hand the events to the
//! consumer, move the checkpoint: in one statement when the consumer does
//! not write, or writes the batch with one statement of its own; in one
//! transaction otherwise.

use std::time::Instant;

use chrono::Utc;
use sqlx::{Connection, PgConnection};

use super::consumer::FeedConsumer;
use super::event::{FeedPosition, StoredEvent};
use super::one_statement::{advance_checkpoint, CheckpointMove};
use super::parked::{lock_and_read_held_back, park, split_held, HeldBack, Parking};
use super::runner::{Runner, StepError};

impl<C: FeedConsumer> Runner<C> {
    /// Opens the transaction of a batch (or of a single event) that writes:
    /// for a durable consumer, one whose commit waits for the WAL flush.
    pub(super) async fn begin_batch<'c>(
        &self,
        conn: &'c mut PgConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, sqlx::Error> {
        let mut tx = conn.begin().await?;
        if self.config.durable_commits {
            sqlx::query("SET LOCAL synchronous_commit = on")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Reports a committed batch (or single event) in the status.
    pub(super) fn committed(&self, checkpoint: FeedPosition, handled: i64) {
        self.status.send_modify(|s| {
            s.polls += 1;
            s.checkpoint = checkpoint;
            s.handled = handled;
            s.batches += 1;
            s.last_error = None;
            s.consecutive_failures = 0;
            s.last_batch_at = Some(Utc::now());
            s.halted = None;
        });
    }

    /// One batch: in one statement when the consumer writes nothing or
    /// writes it with one statement of its own, in one transaction
    /// otherwise. Returns the new checkpoint and the number of events
    /// handled, or `None` when nothing new was committed.
    ///
    /// The checkpoint is kept in memory while this runner holds the lock; the
    /// compare-and-set in the update still refuses to move a checkpoint that
    /// someone else moved.
    ///
    /// `may_hold_back` says whether the consumer may have parked events
    /// (then the batch's events of their aggregates are held back); it is
    /// cleared once a batch finds none.
    ///
    /// `saved` is what the checkpoint row holds: batches that write nothing
    /// leave it behind for up to [`RunnerConfig::checkpoint_delay`] (see
    /// [`Saved`]); an empty read and every batch that writes bring it up to
    /// date first.
    pub(super) async fn step(
        &self,
        conn: &mut PgConnection,
        checkpoint: FeedPosition,
        handled: i64,
        saved: &mut Saved,
        may_hold_back: &mut bool,
    ) -> Result<Option<(FeedPosition, usize)>, StepError> {
        let name = self.consumer.name();
        // The read runs outside any transaction: an idle poll costs one query
        // and never holds an xid that would hold back other readers' fence.
        let mut events = self.read_batch(&mut *conn, checkpoint).await?;
        if let Some(unreadable) = events.iter().position(|e| e.unreadable.is_some()) {
            if unreadable == 0 {
                // Reading it again would fail the same way: park it now.
                self.save_checkpoint(&mut *conn, saved, checkpoint, handled)
                    .await?;
                let (mut at, mut total) = (checkpoint, handled);
                self.park_unreadable(&mut *conn, &mut at, &mut total, &events[0])
                    .await?;
                *saved = Saved::at(at, total);
                *may_hold_back = true;
                return Ok(Some((at, 1)));
            }
            // The events before it first, as a batch of their own.
            events.truncate(unreadable);
        }
        let Some(last) = events.last().map(StoredEvent::feed_position) else {
            // Idle: nothing is left pending.
            self.save_checkpoint(&mut *conn, saved, checkpoint, handled)
                .await?;
            // A successful read also ends a failure streak (e.g. after a reconnect).
            self.status.send_if_modified(|s| {
                s.polls += 1;
                let changed = s.consecutive_failures != 0 || s.last_error.is_some();
                s.consecutive_failures = 0;
                s.last_error = None;
                changed
            });
            return Ok(None);
        };
        let count = events.len();
        let handled_after = handled + count as i64;
        if !*may_hold_back && !self.consumer.writes(&events) {
            // Nothing to commit with the checkpoint: one statement moves it.
            self.consumer
                .handle(&mut *conn, &events)
                .await
                .map_err(StepError::Consumer)?;
            let pending_since = *saved.pending_since.get_or_insert_with(Instant::now);
            if pending_since.elapsed() >= self.config.checkpoint_delay {
                self.save_checkpoint(&mut *conn, saved, last, handled_after)
                    .await?;
            }
            self.committed(last, handled_after);
            tracing::debug!(
                consumer = name,
                events = count,
                "feed batch handled (no writes)"
            );
            return Ok(Some((last, count)));
        }
        // A batch that writes moves the row from where it is.
        self.save_checkpoint(&mut *conn, saved, checkpoint, handled)
            .await?;
        if !*may_hold_back && !self.config.durable_commits {
            let moving = CheckpointMove::new(name, checkpoint, last, count as i64);
            match self
                .consumer
                .handle_in_one_statement(&mut *conn, &events, &moving)
                .await
                .map_err(StepError::Consumer)?
            {
                Some(true) => {
                    *saved = Saved::at(last, handled_after);
                    self.committed(last, handled_after);
                    tracing::debug!(
                        consumer = name,
                        events = count,
                        "feed batch committed (one statement)"
                    );
                    return Ok(Some((last, count)));
                }
                Some(false) => return Err(StepError::LostCheckpoint),
                None => {}
            }
        }
        let mut tx = self.begin_batch(conn).await?;
        // A parking consumer holds back the events of aggregates it has
        // parked events of, so each aggregate's events apply in order.
        let held_back = if *may_hold_back {
            lock_and_read_held_back(&mut tx, name).await?
        } else {
            HeldBack::new()
        };
        let (to_handle, held) = split_held(&events, &held_back);
        if !to_handle.is_empty() {
            self.consumer
                .handle(&mut tx, &to_handle)
                .await
                .map_err(StepError::Consumer)?;
        }
        for (event, first) in &held {
            park(&mut tx, name, event, Parking::HeldBehind(*first)).await?;
        }
        move_checkpoint(&mut tx, name, checkpoint, last, count).await?;
        tx.commit().await?;
        *may_hold_back = !held_back.is_empty();
        *saved = Saved::at(last, handled_after);
        self.committed(last, handled_after);
        if !held.is_empty() {
            tracing::warn!(
                consumer = name,
                events = held.len(),
                "events held behind parked events of their aggregates"
            );
        }
        tracing::debug!(consumer = name, events = count, "feed batch committed");
        Ok(Some((last, count)))
    }
}

impl<C: FeedConsumer> Runner<C> {
    /// Parks `event`, whose row cannot be read back, for this consumer
    /// whatever its [`super::PoisonPolicy`] (no consumer can handle an event
    /// it cannot see, and stopping on it would stop every other one), and
    /// moves the checkpoint past it. Later events of its aggregate are held
    /// behind it, as for any parked event.
    pub(super) async fn park_unreadable(
        &self,
        conn: &mut PgConnection,
        checkpoint: &mut FeedPosition,
        handled: &mut i64,
        event: &StoredEvent,
    ) -> Result<(), StepError> {
        let name = self.consumer.name();
        let error = event.unreadable.as_deref().unwrap_or("unreadable");
        let at = event.feed_position();
        let mut tx = self.begin_batch(conn).await?;
        // Taken for its lock: a retry must not run meanwhile.
        lock_and_read_held_back(&mut tx, name).await?;
        park(&mut tx, name, event, Parking::Failed { error, attempts: 1 }).await?;
        move_checkpoint(&mut tx, name, *checkpoint, at, 1).await?;
        tx.commit().await?;
        (*checkpoint, *handled) = (at, *handled + 1);
        self.committed(at, *handled);
        tracing::error!(consumer = name, event_id = %event.event_id, position = ?at, %error, "a stored event cannot be read; parked it (see `hub projections list`)");
        Ok(())
    }
}

/// What a runner's checkpoint row holds, and since when progress made
/// after it (by batches that write nothing) waits to be saved.
///
/// Saving such progress late is safe: a consumer that writes nothing may
/// handle the same events again (see [`FeedConsumer::writes`]), which is all
/// a crash or a takeover before the save causes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Saved {
    at: FeedPosition,
    handled: i64,
    pending_since: Option<Instant>,
}

impl Saved {
    /// The row holds `at` and `handled`; nothing is pending.
    pub(super) fn at(at: FeedPosition, handled: i64) -> Self {
        Self {
            at,
            handled,
            pending_since: None,
        }
    }
}

impl<C: FeedConsumer> Runner<C> {
    /// Brings the checkpoint row from `saved` up to `checkpoint` (one
    /// compare-and-set), if it is behind.
    pub(super) async fn save_checkpoint(
        &self,
        conn: &mut PgConnection,
        saved: &mut Saved,
        checkpoint: FeedPosition,
        handled: i64,
    ) -> Result<(), StepError> {
        if saved.at == checkpoint {
            return Ok(());
        }
        let count = usize::try_from(handled - saved.handled).unwrap_or(0);
        move_checkpoint(conn, self.consumer.name(), saved.at, checkpoint, count).await?;
        *saved = Saved::at(checkpoint, handled);
        Ok(())
    }
}

/// Moves `consumer`'s checkpoint from `from` to `to` inside `tx`, refusing
/// when someone else moved it.
pub(super) async fn move_checkpoint(
    tx: &mut PgConnection,
    consumer: &str,
    from: FeedPosition,
    to: FeedPosition,
    count: usize,
) -> Result<(), StepError> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    if advance_checkpoint(tx, consumer, from, to, count).await? {
        Ok(())
    } else {
        Err(StepError::LostCheckpoint)
    }
}
