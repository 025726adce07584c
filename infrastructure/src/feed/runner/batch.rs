//! One step of a runner: read the next batch, choose its [`BatchPlan`],
//! run it. Every plan that handles events ends with the checkpoint moved
//! (in the row or, for [`BatchPlan::WritesNothing`], in memory) and the
//! commit reported in the status.

use std::time::Duration;

use sqlx::{Connection as _, PgConnection};

use super::paths;
use super::plan::{Batch, BatchPlan};
use super::state::RunnerState;
use super::{Runner, StepError};
use crate::feed::consumer::FeedConsumer;
use crate::feed::event::{read_after, FeedPosition, StoredEvent};
use crate::feed::parked::{lock_and_read_held_back, park, split_held, HeldBack, Parking};

/// What a step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stepped {
    /// Nothing new was committed.
    Idle,
    /// The checkpoint moved.
    Advanced,
}

impl<C: FeedConsumer> Runner<C> {
    /// Reads the batch after the checkpoint and writes it according to
    /// its plan.
    pub(super) async fn step(
        &self,
        conn: &mut PgConnection,
        state: &mut RunnerState,
    ) -> Result<Stepped, StepError> {
        // The read runs outside any transaction: an idle poll costs one query
        // and never holds an xid that would hold back other readers' fence.
        let events = self.read_batch(&mut *conn, state.checkpoint()).await?;
        let plan = BatchPlan::choose(
            events,
            &*self.consumer,
            state.may_hold_back(),
            self.config.durable_commits,
        );
        if plan.saves_first() {
            state.save(&mut *conn).await?;
        }
        match plan {
            BatchPlan::Idle => {
                self.status.found_nothing();
                return Ok(Stepped::Idle);
            }
            BatchPlan::ParkUnreadable(event) => {
                self.park_unreadable(conn, state, &event).await?;
            }
            BatchPlan::WritesNothing(batch) => self.without_writes(conn, state, &batch).await?,
            BatchPlan::OneStatement(batch) => {
                if !self.in_one_statement(conn, state, &batch).await? {
                    self.in_transaction(conn, state, &batch, false).await?;
                }
            }
            BatchPlan::Transaction { batch, hold_back } => {
                self.in_transaction(conn, state, &batch, hold_back).await?;
            }
        }
        Ok(Stepped::Advanced)
    }

    /// Reads the next batch after `checkpoint`, through the process's
    /// shared window of the log.
    async fn read_batch(
        &self,
        conn: &mut PgConnection,
        checkpoint: FeedPosition,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        if !paths::SHARED_WINDOW {
            return read_after(conn, checkpoint, self.config.batch_size).await;
        }
        let appends = *self.appended.borrow();
        self.reads
            .read_after(conn, checkpoint, self.config.batch_size, appends)
            .await
    }

    /// [`BatchPlan::WritesNothing`]: nothing to commit with the checkpoint.
    async fn without_writes(
        &self,
        conn: &mut PgConnection,
        state: &mut RunnerState,
        batch: &Batch,
    ) -> Result<(), StepError> {
        self.consumer
            .handle(&mut *conn, &batch.events)
            .await
            .map_err(StepError::Consumer)?;
        let count = batch.events.len();
        let delay = if paths::DELAYED_CHECKPOINT {
            self.config.checkpoint_delay
        } else {
            Duration::ZERO
        };
        state
            .handled_without_writes(conn, batch.last, count, delay)
            .await?;
        self.report_commit(state).await;
        tracing::debug!(
            consumer = self.consumer.name(),
            events = count,
            "feed batch handled (no writes)"
        );
        Ok(())
    }

    /// [`BatchPlan::OneStatement`]: returns false, having done nothing,
    /// when the consumer has no such statement.
    async fn in_one_statement(
        &self,
        conn: &mut PgConnection,
        state: &mut RunnerState,
        batch: &Batch,
    ) -> Result<bool, StepError> {
        let count = batch.events.len();
        let moving = state.move_to(batch.last, count);
        let moved = self
            .consumer
            .handle_in_one_statement(conn, &batch.events, &moving)
            .await
            .map_err(StepError::Consumer)?;
        match moved {
            Some(true) => {
                state.committed(batch.last, count);
                self.report_commit(state).await;
                tracing::debug!(
                    consumer = self.consumer.name(),
                    events = count,
                    "feed batch committed (one statement)"
                );
                Ok(true)
            }
            Some(false) => Err(StepError::LostCheckpoint),
            None => Ok(false),
        }
    }

    /// [`BatchPlan::Transaction`]. With `hold_back`, a parking consumer
    /// holds back the events of aggregates it has parked events of, so
    /// each aggregate's events apply in order.
    async fn in_transaction(
        &self,
        conn: &mut PgConnection,
        state: &mut RunnerState,
        batch: &Batch,
        hold_back: bool,
    ) -> Result<(), StepError> {
        let name = self.consumer.name();
        let mut tx = self.begin_batch(conn).await?;
        let held_back = if hold_back {
            lock_and_read_held_back(&mut tx, name).await?
        } else {
            HeldBack::new()
        };
        let (to_handle, held) = split_held(&batch.events, &held_back);
        if !to_handle.is_empty() {
            self.consumer
                .handle(&mut tx, &to_handle)
                .await
                .map_err(StepError::Consumer)?;
        }
        for (event, first) in &held {
            park(&mut tx, name, event, Parking::HeldBehind(*first)).await?;
        }
        let count = batch.events.len();
        self.commit(tx, state, batch.last, count).await?;
        state.set_may_hold_back(!held_back.is_empty());
        if !held.is_empty() {
            tracing::warn!(
                consumer = name,
                events = held.len(),
                "events held behind parked events of their aggregates"
            );
        }
        tracing::debug!(consumer = name, events = count, "feed batch committed");
        Ok(())
    }

    /// Parks `event`, whose row cannot be read back, for this consumer
    /// whatever its [`crate::feed::PoisonPolicy`] (no consumer can handle
    /// an event it cannot see, and stopping on it would stop every other
    /// one), and moves the checkpoint past it. Later events of its
    /// aggregate are held behind it, as for any parked event.
    pub(super) async fn park_unreadable(
        &self,
        conn: &mut PgConnection,
        state: &mut RunnerState,
        event: &StoredEvent,
    ) -> Result<(), StepError> {
        let name = self.consumer.name();
        let error = event.unreadable.as_deref().unwrap_or("unreadable");
        let at = event.feed_position();
        state.set_may_hold_back(true);
        let mut tx = self.begin_batch(conn).await?;
        // Taken for its lock: a retry must not run meanwhile.
        lock_and_read_held_back(&mut tx, name).await?;
        park(&mut tx, name, event, Parking::Failed { error, attempts: 1 }).await?;
        self.commit(tx, state, at, 1).await?;
        tracing::error!(consumer = name, event_id = %event.event_id, position = ?at, %error, "a stored event cannot be read; parked it (see `hub projections list`)");
        Ok(())
    }

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

    /// Tells the consumer its last writes committed, then reports the
    /// commit in the status: in that order, so that a waiter the status
    /// wakes finds whatever the consumer keeps in memory of them (the
    /// `projects` read model's recent rows).
    async fn report_commit(&self, state: &RunnerState) {
        self.consumer.after_commit().await;
        self.status.committed(state.checkpoint(), state.handled());
    }

    /// Moves the checkpoint to `to` (adding `count` events) inside `tx`,
    /// commits, and reports the commit.
    pub(super) async fn commit(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        state: &mut RunnerState,
        to: FeedPosition,
        count: usize,
    ) -> Result<(), StepError> {
        state.move_in(&mut tx, to, count).await?;
        tx.commit().await?;
        state.committed(to, count);
        self.report_commit(state).await;
        Ok(())
    }
}
