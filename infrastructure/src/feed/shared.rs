//! Reads of the log shared by the runners of one process.
//!
//! Every runner of a process reads the same log, mostly at the same place:
//! woken by the same append, the relay, the process manager and the read
//! models would each send the same query and decode the same rows. Instead
//! they read through one window of recent events: one runner queries while
//! the others wait for it, then each takes what it has not handled yet.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sqlx::PgConnection;
use tokio::sync::Mutex;

use super::event::{read_after, FeedPosition, StoredEvent};

/// Most events the window keeps; older ones are dropped first.
const MAX_EVENTS: usize = 4096;

/// How long a read that found nothing new answers for the other runners,
/// as long as this process appended nothing since. Events appended by other
/// processes are seen at most this much later.
const EMPTY_ANSWER_LIFETIME: Duration = Duration::from_millis(1);

/// The window of the log last read by this process's runners.
#[derive(Debug, Default)]
pub(super) struct SharedReads {
    window: Mutex<Window>,
}

/// Every event of the log in `(start, end]`, in feed order, where `end` is
/// the last event's position (or `start` when there is none).
#[derive(Debug, Default)]
struct Window {
    start: FeedPosition,
    events: VecDeque<StoredEvent>,
    /// When a read at the window's end last found nothing new, and this
    /// process's append count before that read.
    nothing_new: Option<(Instant, u64)>,
}

impl Window {
    fn end(&self) -> FeedPosition {
        self.events
            .back()
            .map_or(self.start, StoredEvent::feed_position)
    }
}

impl SharedReads {
    /// Up to `limit` committed events after `after`, in feed order, as
    /// [`read_after`] returns them (a prefix of them when they come from
    /// the window). `appends` is this process's append count (see
    /// `AppendSignal`), read before calling.
    pub(super) async fn read_after(
        &self,
        conn: &mut PgConnection,
        after: FeedPosition,
        limit: i64,
        appends: u64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let mut window = self.window.lock().await;
        let end = window.end();
        if window.start <= after && after < end {
            let first = window
                .events
                .partition_point(|event| event.feed_position() <= after);
            let take = usize::try_from(limit).unwrap_or(usize::MAX);
            return Ok(window.events.range(first..).take(take).cloned().collect());
        }
        if after == end
            && window
                .nothing_new
                .is_some_and(|(at, seen)| seen == appends && at.elapsed() < EMPTY_ANSWER_LIFETIME)
        {
            return Ok(Vec::new());
        }
        // The lock is held through the query, so runners woken together
        // send it once.
        let events = read_after(conn, after, limit).await?;
        if after == end {
            window.events.extend(events.iter().cloned());
            window.nothing_new = events.is_empty().then(|| (Instant::now(), appends));
        } else if after > end || window.events.is_empty() {
            window.start = after;
            window.events = events.iter().cloned().collect();
            window.nothing_new = events.is_empty().then(|| (Instant::now(), appends));
        }
        // A read before the window (a runner far behind the others) leaves
        // the window where the others are.
        while window.events.len() > MAX_EVENTS {
            if let Some(dropped) = window.events.pop_front() {
                window.start = dropped.feed_position();
            }
        }
        Ok(events)
    }
}
