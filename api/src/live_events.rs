//! Events from a point of the feed on: first what the store holds after
//! that point, then the live broadcast, with no gap and no duplicate at the
//! seam. The GraphQL `events` subscription and the SSE event stream both
//! read events this way ([`replay_then_live`]).
//!
//! Why the seam is exact: the receiver is subscribed before the replay
//! starts, and every event the broadcast carries was read from the store
//! by the relay first, below the feed's fence, which only moves forward.
//! So an event relayed after the subscription is either read by the replay
//! (and skipped when it comes live: its position is at or before the last
//! one replayed) or comes live after the replay's end; one relayed before
//! the subscription was already readable, so the replay reads it.

use std::sync::Arc;

use futures::Stream;
use infrastructure::feed::{read_after, FeedPosition};
use infrastructure::nats::Envelope;
use projections::EventFilter;
use sqlx::PgPool;
use tokio::sync::broadcast::{self, error::RecvError};

/// Events read from the store per batch while replaying.
const REPLAY_BATCH: i64 = 500;

/// What a stream does when the live broadcast drops events for it
/// (its reader fell more than the subscriber buffer behind).
#[derive(Clone)]
pub enum OnLag {
    /// End with [`LiveError::Lagged`].
    End,
    /// Replay from the store after the last event passed on, then go live
    /// again: nothing is lost. Needs a start position (with none, there is
    /// nothing to replay after, and the stream ends as with [`OnLag::End`]).
    /// The function is called with the number of events dropped each time.
    Replay(Arc<dyn Fn(u64) + Send + Sync>),
}

impl std::fmt::Debug for OnLag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::End => "End",
            Self::Replay(_) => "Replay",
        })
    }
}

/// Why a stream of events ended early.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The live broadcast dropped `skipped` events for this reader.
    #[error("fell {skipped} events behind the live feed")]
    Lagged {
        /// How many events the broadcast dropped.
        skipped: u64,
        /// The last event passed on (filtered out or not), if any: a new
        /// stream started after it continues without a gap.
        resume: Option<FeedPosition>,
    },
    /// Reading the store failed.
    #[error("reading the event store failed: {0}")]
    Store(#[from] sqlx::Error),
}

/// Whether `event` passes `filter`.
pub fn matches(filter: &EventFilter, event: &Envelope) -> bool {
    filter
        .subject
        .as_ref()
        .is_none_or(|p| p.matches(&event.subject))
        && filter
            .aggregate_id
            .as_ref()
            .is_none_or(|id| *id == event.aggregate_id)
        && filter
            .correlation_id
            .as_ref()
            .is_none_or(|id| event.correlation_id.as_ref() == Some(id))
        && filter
            .event_types
            .as_ref()
            .is_none_or(|types| types.contains(&event.event_type))
        && filter.since.is_none_or(|since| event.timestamp >= since)
        && filter.until.is_none_or(|until| event.timestamp < until)
}

/// The events passing `filter`: with `start`, those the store holds after
/// it, then live ones from `live`; without, live ones only. `live` must have
/// been subscribed before this is called, so that nothing relayed meanwhile
/// is missed. An error ends the stream.
pub fn replay_then_live(
    pool: PgPool,
    hub_id: String,
    mut live: broadcast::Receiver<Arc<Envelope>>,
    filter: EventFilter,
    start: Option<FeedPosition>,
    on_lag: OnLag,
) -> impl Stream<Item = Result<Arc<Envelope>, LiveError>> + Send + 'static {
    async_stream::stream! {
        // The last event passed on (filtered out or not).
        let mut last = start;
        let mut replay_after = start;
        loop {
            if let Some(mut at) = replay_after.take() {
                loop {
                    let batch = match pool.acquire().await {
                        Ok(mut conn) => read_after(&mut conn, at, REPLAY_BATCH).await,
                        Err(err) => Err(err),
                    };
                    let batch = match batch {
                        Ok(batch) => batch,
                        Err(err) => {
                            yield Err(LiveError::Store(err));
                            return;
                        }
                    };
                    if batch.is_empty() {
                        break;
                    }
                    for stored in &batch {
                        at = stored.feed_position();
                        if stored.unreadable.is_some() {
                            // Parked by the relay too: never delivered.
                            continue;
                        }
                        let event = Envelope::from_stored(stored, &hub_id);
                        if matches(&filter, &event) {
                            yield Ok(Arc::new(event));
                        }
                    }
                    last = Some(at);
                }
            }
            loop {
                let event = match live.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(skipped)) => match (&on_lag, last) {
                        (OnLag::Replay(lagged), Some(at)) => {
                            tracing::debug!(skipped, "an event stream fell behind the live feed; replaying from the store");
                            lagged(skipped);
                            replay_after = Some(at);
                            break;
                        }
                        _ => {
                            yield Err(LiveError::Lagged { skipped, resume: last });
                            return;
                        }
                    },
                    Err(RecvError::Closed) => return,
                };
                let at = event.feed_position();
                if last.is_some_and(|last| at <= last) {
                    continue;
                }
                last = Some(at);
                if matches(&filter, &event) {
                    yield Ok(event);
                }
            }
        }
    }
}
