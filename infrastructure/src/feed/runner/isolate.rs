//! Finding the event a consumer keeps failing on: the failing batch handed
//! over one event per transaction, then parked or halted on according to
//! the runner's [`PoisonPolicy`].

use sqlx::PgConnection;

use super::state::RunnerState;
use super::{Runner, StepError};
use crate::feed::consumer::FeedConsumer;
use crate::feed::event::read_after;
use crate::feed::parked::{aggregate_of, lock_and_read_held_back, park, Parking};
use crate::feed::poison::{HaltedOn, PoisonPolicy};

impl<C: FeedConsumer> Runner<C> {
    /// Handles the batch after the checkpoint, which failed `attempts`
    /// times, one event per transaction, to find the event the consumer
    /// fails on. Events before it are committed (with the checkpoint) as
    /// usual. With [`PoisonPolicy::Park`] a failing event is parked and the
    /// rest of the batch goes on; returns `None` once the batch is through.
    /// With [`PoisonPolicy::Halt`] returns the first failing event, with
    /// the checkpoint right before it.
    ///
    /// The checkpoint row must be saved ([`RunnerState::save`]): the
    /// search moves it event by event, from where it is. An outage on the
    /// way ends the search with the consumer's error: the batch is then
    /// retried as usual.
    pub(super) async fn isolate(
        &self,
        conn: &mut PgConnection,
        state: &mut RunnerState,
        attempts: u32,
    ) -> Result<Option<HaltedOn>, StepError> {
        let name = self.consumer.name();
        // It may park events (any consumer may park an unreadable one):
        // look before the next batches.
        state.set_may_hold_back(true);
        let events = read_after(&mut *conn, state.checkpoint(), self.config.batch_size).await?;
        for event in &events {
            if event.unreadable.is_some() {
                self.park_unreadable(conn, state, event).await?;
                continue;
            }
            let at = event.feed_position();
            let mut tx = self.begin_batch(conn).await?;
            // Any consumer may have parked events (unreadable ones are
            // parked whatever the policy): their aggregates wait.
            let held_back = lock_and_read_held_back(&mut tx, name).await?;
            if let Some(first) = held_back.get(&aggregate_of(event)) {
                park(&mut tx, name, event, Parking::HeldBehind(*first)).await?;
                self.commit(tx, state, at, 1).await?;
                continue;
            }
            let err = match self
                .consumer
                .handle(&mut tx, std::slice::from_ref(event))
                .await
            {
                Ok(()) => {
                    self.commit(tx, state, at, 1).await?;
                    continue;
                }
                Err(err) => err,
            };
            tx.rollback().await?;
            if self.consumer.is_outage(&err) {
                return Err(StepError::Consumer(err));
            }
            let error = err.to_string();
            if self.config.poison == PoisonPolicy::Halt {
                tracing::error!(consumer = name, event_id = %event.event_id, position = ?at, %error, "feed consumer halted on an event it keeps failing on");
                return Ok(Some(HaltedOn {
                    event_id: event.event_id,
                    position: at,
                    error,
                }));
            }
            let mut tx = self.begin_batch(conn).await?;
            // Taken for its lock: a retry must not run meanwhile.
            lock_and_read_held_back(&mut tx, name).await?;
            let attempts = i32::try_from(attempts.saturating_add(1)).unwrap_or(i32::MAX);
            park(
                &mut tx,
                name,
                event,
                Parking::Failed {
                    error: &error,
                    attempts,
                },
            )
            .await?;
            self.commit(tx, state, at, 1).await?;
            tracing::error!(consumer = name, event_id = %event.event_id, position = ?at, %error, "feed consumer failed on an event; parked it");
        }
        Ok(None)
    }
}
