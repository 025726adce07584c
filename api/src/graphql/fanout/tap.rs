//! What a subscription's resolver tells the fan-out about the items it
//! passes on: where in the feed each one stands ([`Mark`]), where a live
//! stream starts ([`Floor`]), and when it fell behind the live feed. The
//! fan-out puts a [`Tap`] into the request's data; resolvers run without
//! one (a query over HTTP, a test) record nothing.
//!
//! The resolver records just before it yields an item, and async-graphql
//! resolves that item before it polls the resolver's stream again, so the
//! record read after each response is that response's.

use std::sync::{Arc, Mutex};

use infrastructure::feed::FeedPosition;
use projections::projects::Version;
use tokio::sync::Notify;

/// Where an item stands in the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The feed position the item was made at (its event's, or the point
    /// a snapshot or current state was read at).
    pub at: FeedPosition,
    /// Whether, once this item is passed on, every item of the stream at
    /// or before `at` has been: false for all but the last message of a
    /// snapshot (they share one position).
    pub complete: bool,
    /// The project version the item shows, when it shows one
    /// (`projectChanged`), to resume after it with `sinceVersion`.
    pub version: Option<i64>,
}

impl Mark {
    /// An item at `at` after which everything at or before `at` is passed on.
    pub fn through(at: FeedPosition) -> Self {
        Self {
            at,
            complete: true,
            version: None,
        }
    }

    /// A project at `version`.
    pub fn of_version(version: &Version) -> Self {
        Self {
            at: version.at,
            complete: true,
            version: Some(version.row.version),
        }
    }
}

/// An item and its mark.
#[derive(Clone, Debug)]
pub struct Marked<T> {
    /// What the subscriber is sent.
    pub item: T,
    /// Where it stands.
    pub mark: Mark,
}

/// Where a live stream starts, before it passes anything on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    /// Everything after this position, and nothing at or before it.
    After(FeedPosition),
    /// Whatever the live feed carries from now on (`events` without `after`).
    Now,
}

/// The item behind the last response, as its resolver recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Yielded {
    /// An item at a place in the feed.
    Item(Mark),
    /// The stream fell this many events behind the live feed and ends.
    Lagged(u64),
}

/// Resume after this item: put into the data of a subscription the
/// fan-out restarts after its subscriber fell behind the shared stream.
#[derive(Clone, Copy, Debug)]
pub struct Resume(pub Mark);

/// The record a resolver keeps for the fan-out.
#[derive(Clone, Default)]
pub struct Tap(Arc<Inner>);

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    /// Signalled when a floor is recorded.
    floored: Notify,
}

#[derive(Default)]
struct State {
    floor: Option<Floor>,
    /// Items recorded so far.
    items: u64,
    last: Option<Yielded>,
}

impl Tap {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stream starts at `floor` (recorded before it yields anything).
    pub fn floor(&self, floor: Floor) {
        self.state().floor = Some(floor);
        self.0.floored.notify_one();
    }

    /// The next item yielded stands at `mark`.
    pub fn item(&self, mark: Mark) {
        let mut state = self.state();
        state.items += 1;
        state.last = Some(Yielded::Item(mark));
    }

    /// The next item yielded is the error of a stream that fell `skipped`
    /// events behind the live feed.
    pub fn lagged(&self, skipped: u64) {
        let mut state = self.state();
        state.items += 1;
        state.last = Some(Yielded::Lagged(skipped));
    }

    /// Passes `marked` on, recording its mark.
    pub fn pass<T>(tap: Option<&Tap>, marked: Marked<T>) -> T {
        if let Some(tap) = tap {
            tap.item(marked.mark);
        }
        marked.item
    }

    /// What the last response was made from; `None` for a response no
    /// item was recorded for (an error of the operation itself).
    pub(super) fn take(&self) -> Option<Yielded> {
        self.state().last.take()
    }

    /// The floor, while nothing has been yielded yet.
    pub(super) fn idle_floor(&self) -> Option<Floor> {
        let state = self.state();
        (state.items == 0).then_some(state.floor).flatten()
    }

    /// The floor, if one was recorded.
    pub(super) fn recorded_floor(&self) -> Option<Floor> {
        self.state().floor
    }

    /// Completes once a floor has been recorded (at once if it has been).
    pub(super) async fn floored(&self) {
        loop {
            let notified = self.0.floored.notified();
            if self.state().floor.is_some() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(position: i64) -> FeedPosition {
        FeedPosition {
            transaction_id: position,
            position,
        }
    }

    #[test]
    fn each_record_is_taken_once_and_a_floor_counts_only_before_the_first_item() {
        let tap = Tap::default();
        assert_eq!(tap.take(), None);
        tap.floor(Floor::After(at(3)));
        assert_eq!(tap.idle_floor(), Some(Floor::After(at(3))));
        tap.item(Mark::through(at(4)));
        assert_eq!(tap.idle_floor(), None, "an item is on its way");
        assert_eq!(tap.take(), Some(Yielded::Item(Mark::through(at(4)))));
        assert_eq!(tap.take(), None, "taken");
        tap.lagged(7);
        assert_eq!(tap.take(), Some(Yielded::Lagged(7)));
    }

    #[tokio::test]
    async fn floored_waits_for_a_floor() {
        let tap = Tap::default();
        let waiting = tokio::spawn({
            let tap = tap.clone();
            async move { tap.floored().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        tap.floor(Floor::Now);
        waiting.await.expect("the waiter ends");
        tap.floored().await;
    }
}
