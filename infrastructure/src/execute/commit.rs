//! The rows a decision writes: its events, numbered after the loaded
//! state, and the aggregate's snapshot when one is due. The same rows
//! postgres-es would write, so either reads what the other wrote.

use cqrs_es::persist::{EventStoreAggregateContext, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;

use crate::append::{Commit, SnapshotUpdate};

/// The commit of `events`, decided on `context` and leaving the aggregate
/// as `decided`, each event carrying `metadata`. With `snapshot_every`, a
/// snapshot of `decided` is taken when the events reach or pass a multiple
/// of it (as cqrs-es' snapshot store counts).
///
/// The snapshot is the state after all of the commit's events, and is
/// recorded as of the last of them. (cqrs-es snapshots the state at the
/// multiple, but postgres-es records it as of the commit's last event; a
/// commit of two events that reaches the multiple with its first would
/// lose its second on the next load.)
///
/// # Errors
/// An event or the aggregate does not serialize.
pub(super) fn of<A: Aggregate>(
    context: &EventStoreAggregateContext<A>,
    events: Vec<A::Event>,
    decided: &A,
    metadata: &Value,
    snapshot_every: Option<usize>,
) -> Result<Commit, serde_json::Error> {
    let current = context.current_sequence;
    let count = events.len();
    let events = events
        .into_iter()
        .zip(current + 1..)
        .map(|(event, sequence)| {
            Ok(SerializedEvent::new(
                context.aggregate_id.clone(),
                sequence,
                A::TYPE.to_owned(),
                event.event_type(),
                event.event_version(),
                serde_json::to_value(&event)?,
                metadata.clone(),
            ))
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    let snapshot = match snapshot_every {
        Some(every) if snapshot_due(every, current, count) => Some(SnapshotUpdate {
            payload: serde_json::to_value(decided)?,
            last_sequence: current + count,
            current_snapshot: context.current_snapshot.map_or(1, |number| number + 1),
        }),
        _ => None,
    };
    Ok(Commit { events, snapshot })
}

/// Whether `count` events after sequence `current` reach or pass a
/// multiple of `every`.
fn snapshot_due(every: usize, current: usize, count: usize) -> bool {
    every > 0 && (current + count) / every > current / every
}

#[cfg(test)]
mod tests {
    use super::snapshot_due;

    #[test]
    fn a_snapshot_is_due_when_a_commit_reaches_or_passes_a_multiple() {
        assert!(snapshot_due(50, 49, 1), "reaches 50");
        assert!(snapshot_due(50, 49, 2), "passes 50 with its first event");
        assert!(snapshot_due(50, 48, 2), "reaches 50 with its last event");
        assert!(!snapshot_due(50, 47, 2), "ends at 49");
        assert!(!snapshot_due(50, 50, 1), "starts after 50");
        assert!(snapshot_due(50, 0, 120), "passes 50 and 100");
    }

    #[test]
    fn snapshots_fall_where_cqrs_es_counts_them() {
        // cqrs-es' own cases (`SourceOfTruth::Snapshot`): (every, current,
        // count) and whether it snapshots.
        for (every, current, count, due) in [
            (5, 5, 3, false),
            (4, 5, 3, true),
            (4, 5, 4, true),
            (4, 5, 8, true),
        ] {
            assert_eq!(
                snapshot_due(every, current, count),
                due,
                "{every} {current} {count}"
            );
        }
    }
}
