//! [`BatchPlan`]: how a batch will be written, chosen from what was read
//! before the consumer sees any of it.
//!
//! The plans, cheapest first (each is taken when the ones before it do
//! not apply):
//! - [`BatchPlan::Idle`]: nothing new.
//! - [`BatchPlan::ParkUnreadable`]: the next event's row cannot be read
//!   back; it is parked on its own.
//! - [`BatchPlan::WritesNothing`]: the consumer writes nothing for these
//!   events ([`FeedConsumer::writes`]), e.g. the NATS relay: no
//!   transaction, and the checkpoint row is saved late (the delayed save).
//! - [`BatchPlan::OneStatement`]: the consumer may write the batch and
//!   move the checkpoint in one statement of its own
//!   ([`FeedConsumer::handle_in_one_statement`]), e.g. the read models.
//! - [`BatchPlan::Transaction`]: `BEGIN`, the consumer's writes, the
//!   checkpoint, `COMMIT`. The only plan that can hold events back behind
//!   their aggregates' parked events, and the only one for a durable
//!   consumer ([`crate::feed::RunnerConfig::durable_commits`]).

use super::paths;
use crate::feed::consumer::FeedConsumer;
use crate::feed::event::{FeedPosition, StoredEvent};

/// How the next batch is written.
#[derive(Debug, PartialEq)]
pub(super) enum BatchPlan {
    /// Nothing new below the fence: bring the checkpoint row up to date
    /// and wait.
    Idle,
    /// The next event's row cannot be read back: park it, for this
    /// consumer whatever its poison policy, and move past it.
    ParkUnreadable(Box<StoredEvent>),
    /// Hand the events over on the runner's connection, outside a
    /// transaction; the checkpoint row follows within
    /// [`crate::feed::RunnerConfig::checkpoint_delay`].
    WritesNothing(Batch),
    /// Offer the consumer one statement for its writes and the
    /// checkpoint; a consumer without one gets a
    /// [`BatchPlan::Transaction`] without hold-back.
    OneStatement(Batch),
    /// One transaction; with `hold_back`, events of aggregates with
    /// parked events are parked behind them instead of handed over.
    Transaction {
        /// The events.
        batch: Batch,
        /// Whether the consumer may have parked events.
        hold_back: bool,
    },
}

/// The events of a batch (at least one) and the position of the last.
#[derive(Debug, PartialEq)]
pub(super) struct Batch {
    /// The events, in feed order.
    pub(super) events: Vec<StoredEvent>,
    /// Where the checkpoint moves to.
    pub(super) last: FeedPosition,
}

impl BatchPlan {
    /// The plan for `events`, read after the checkpoint. `may_hold_back`
    /// says whether the consumer may have parked events; `durable` whether
    /// its commits wait for the WAL flush.
    pub(super) fn choose<C: FeedConsumer + ?Sized>(
        mut events: Vec<StoredEvent>,
        consumer: &C,
        may_hold_back: bool,
        durable: bool,
    ) -> Self {
        if let Some(unreadable) = events.iter().position(|e| e.unreadable.is_some()) {
            if unreadable == 0 {
                // Reading it again would fail the same way: park it now.
                return Self::ParkUnreadable(Box::new(events.swap_remove(0)));
            }
            // The events before it first, as a batch of their own.
            events.truncate(unreadable);
        }
        let Some(last) = events.last().map(StoredEvent::feed_position) else {
            return Self::Idle;
        };
        let batch = Batch { events, last };
        if may_hold_back {
            return Self::Transaction {
                batch,
                hold_back: true,
            };
        }
        if paths::WRITES_NOTHING && !consumer.writes(&batch.events) {
            return Self::WritesNothing(batch);
        }
        if paths::ONE_STATEMENT && !durable {
            return Self::OneStatement(batch);
        }
        Self::Transaction {
            batch,
            hold_back: false,
        }
    }

    /// Whether the checkpoint row is brought up to date before the plan
    /// runs: a plan that writes moves the row from where it is, and an
    /// idle runner leaves nothing pending. Only
    /// [`BatchPlan::WritesNothing`] leaves it behind.
    pub(super) fn saves_first(&self) -> bool {
        !matches!(self, Self::WritesNothing(_))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use sqlx::PgConnection;
    use uuid::Uuid;

    use super::*;
    use crate::feed::consumer::ConsumerError;
    use crate::metadata::CommandMetadata;

    /// A consumer that writes, or not, as told.
    struct Writes(bool);

    #[async_trait::async_trait]
    impl FeedConsumer for Writes {
        fn name(&self) -> &str {
            "plan-test"
        }

        async fn handle(
            &self,
            _tx: &mut PgConnection,
            _events: &[StoredEvent],
        ) -> Result<(), ConsumerError> {
            Ok(())
        }

        fn writes(&self, _events: &[StoredEvent]) -> bool {
            self.0
        }
    }

    fn event(position: i64, unreadable: bool) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::from_u128(position as u128),
            position,
            transaction_id: 7,
            aggregate_type: "Project".into(),
            aggregate_id: "a".into(),
            sequence: position,
            event_type: "ProjectCreated".into(),
            event_version: "1.0".into(),
            payload: serde_json::json!({}),
            metadata: CommandMetadata::from_json(&serde_json::json!({})),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            unreadable: unreadable.then(|| "not JSON".to_owned()),
        }
    }

    fn batch(events: Vec<StoredEvent>) -> Batch {
        let last = events.last().map(StoredEvent::feed_position).unwrap();
        Batch { events, last }
    }

    #[test]
    fn an_empty_read_is_idle_and_saves_the_checkpoint() {
        let plan = BatchPlan::choose(Vec::new(), &Writes(false), false, false);
        assert_eq!(plan, BatchPlan::Idle);
        assert!(plan.saves_first());
    }

    #[test]
    fn an_unreadable_first_event_is_parked_on_its_own() {
        let events = vec![event(1, true), event(2, false)];
        let plan = BatchPlan::choose(events, &Writes(true), false, false);
        assert_eq!(plan, BatchPlan::ParkUnreadable(Box::new(event(1, true))));
    }

    #[test]
    fn events_before_an_unreadable_one_are_a_batch_of_their_own() {
        let events = vec![event(1, false), event(2, false), event(3, true)];
        let plan = BatchPlan::choose(events, &Writes(true), false, false);
        let expected = batch(vec![event(1, false), event(2, false)]);
        assert_eq!(plan, BatchPlan::OneStatement(expected));
    }

    #[test]
    fn a_consumer_that_writes_nothing_leaves_the_checkpoint_row_behind() {
        let plan = BatchPlan::choose(vec![event(1, false)], &Writes(false), false, true);
        assert_eq!(plan, BatchPlan::WritesNothing(batch(vec![event(1, false)])));
        assert!(!plan.saves_first());
    }

    #[test]
    fn a_durable_consumer_that_writes_gets_a_transaction() {
        let plan = BatchPlan::choose(vec![event(1, false)], &Writes(true), false, true);
        let expected = BatchPlan::Transaction {
            batch: batch(vec![event(1, false)]),
            hold_back: false,
        };
        assert_eq!(plan, expected);
        assert!(plan.saves_first());
    }

    #[test]
    fn parked_events_need_a_transaction_whatever_the_consumer_writes() {
        for writes in [false, true] {
            let plan = BatchPlan::choose(vec![event(1, false)], &Writes(writes), true, false);
            let expected = BatchPlan::Transaction {
                batch: batch(vec![event(1, false)]),
                hold_back: true,
            };
            assert_eq!(plan, expected, "writes: {writes}");
        }
    }
}
