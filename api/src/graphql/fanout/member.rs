//! One subscriber of a shared stream: its own run of the operation until
//! it may take the group's items over, then the group's items, and its
//! own run again if it falls behind them.
//!
//! A member first runs the operation itself (its own current state,
//! snapshot or replay, and its own refusals), and takes the group over at
//! a point `p` its own run has passed everything up to: an item marked
//! complete, or the floor of a live stream that has passed nothing yet.
//! It may do so when the group's items reach back no further than `p`
//! (what the group covered when the member subscribed to it is at or
//! before `p`): every item after `p` then reaches the member, and it skips
//! those at or before `p`. A member alone in its group never takes over:
//! the group runs nothing until a second member joins. A stream that only
//! goes live (nothing of its own first) joins a running group's items at
//! once, at the point they cover, without a run of its own.
//!
//! Falling more than the buffer behind the group's items: for `events`,
//! the lag error naming the last item passed on; for the project streams,
//! the operation run again after that item (from the store, as a lagging
//! stream of its own would be) until it may take the group over again.

use std::sync::Arc;

use async_graphql::{PathSegment, Pos, Response};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt as _};
use tokio::sync::broadcast::{self, error::RecvError};

use super::group::{Covered, Group, Registry, Shared};
use super::key::OnLag;
use super::tap::{Floor, Mark, Resume, Tap, Yielded};
use super::{serialize, Payload, Runner};
use crate::graphql::door::SubscriptionSlot;

/// How a member starts.
pub(super) enum Start {
    /// With a run of its own.
    Own,
    /// On the group's items, after this item (all of them for `None`).
    TakenOver(Option<Mark>),
}

impl Start {
    /// For a member of a group that covered `covered` when it joined.
    pub(super) fn taken_over(covered: Covered) -> Option<Self> {
        match covered {
            Covered::Unknown => None,
            Covered::FromJoin => Some(Self::TakenOver(None)),
            Covered::Through(at) => Some(Self::TakenOver(Some(Mark::through(at)))),
        }
    }
}

/// A member of `group`.
pub(super) struct Member {
    pub(super) group: Arc<Group>,
    pub(super) receiver: broadcast::Receiver<Arc<Shared>>,
    /// What the group covered when the member subscribed.
    pub(super) covered: Covered,
    pub(super) runner: Runner,
    pub(super) on_lag: OnLag,
    /// The root field's place and response key.
    pub(super) field: (Pos, String),
    /// Counts the subscription in the socket and the process.
    pub(super) _slot: SubscriptionSlot,
    pub(super) registry: Registry,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.group.leave(&self.registry);
    }
}

/// The member's own run of the operation.
struct Own {
    responses: BoxStream<'static, Response>,
    tap: Tap,
    floored: bool,
}

impl Member {
    fn run(&self, resume: Option<Resume>) -> Own {
        let tap = Tap::default();
        Own {
            responses: self.runner.start(tap.clone(), resume),
            tap,
            floored: false,
        }
    }

    /// Whether the member, its own run having passed everything up to
    /// `point`, may take the group's items over now.
    fn may_take_over(&mut self, point: Floor) -> bool {
        if !self.group.is_open() {
            return false;
        }
        if self.receiver.len() > self.group.buffer() {
            // Items it would need were dropped while it ran on its own.
            (self.receiver, self.covered) = self.group.resubscribe();
            return false;
        }
        if self.covered == Covered::Unknown {
            // A later reading reaches back at least as far.
            self.covered = self.group.covered();
        }
        match (self.covered, point) {
            (Covered::Unknown, _) => false,
            (Covered::FromJoin, _) | (Covered::Through(_), Floor::Now) => true,
            (Covered::Through(group), Floor::After(at)) => at >= group,
        }
    }

    /// The lag error of a member that passed `last` on last, as its own
    /// stream would have ended.
    fn lag_error(&self, skipped: u64, last: Option<Mark>) -> Payload {
        let (pos, key) = &self.field;
        let error = crate::graphql::subscription::lagged(skipped, last.map(|mark| mark.at))
            .into_server_error(*pos)
            .with_path(vec![PathSegment::Field(key.clone())]);
        Payload::Own(serialize(&Response::from_errors(vec![error])))
    }

    /// The member's messages.
    pub(super) fn messages(mut self, start: Start) -> impl Stream<Item = Payload> + Send + 'static {
        async_stream::stream! {
            // The last item passed on with a place in the feed.
            let (mut own, mut last) = match start {
                Start::Own => (Some(self.run(None)), None),
                Start::TakenOver(after) => (None, after),
            };
            loop {
                if let Some(run) = own.as_mut() {
                    enum Step {
                        /// The next response, serialized, with its record.
                        Response(Option<(String, Option<Yielded>)>),
                        Floor,
                    }
                    let step = tokio::select! {
                        biased;
                        response = run.responses.next() => {
                            Step::Response(response.map(|response| (serialize(&response), run.tap.take())))
                        }
                        () = run.tap.floored(), if !run.floored => Step::Floor,
                    };
                    let point = match step {
                        Step::Response(None) => return,
                        Step::Response(Some((payload, yielded))) => {
                            yield Payload::Own(payload);
                            match yielded {
                                Some(Yielded::Item(mark)) => {
                                    last = Some(mark);
                                    mark.complete.then_some(Floor::After(mark.at))
                                }
                                _ => None,
                            }
                        }
                        Step::Floor => {
                            run.floored = true;
                            run.tap.idle_floor()
                        }
                    };
                    if let Some(point) = point {
                        if self.may_take_over(point) {
                            if let Floor::After(at) = point {
                                last = Some(last.filter(|mark| mark.at == at).unwrap_or(Mark::through(at)));
                            }
                            own = None;
                        }
                    }
                    continue;
                }
                match self.receiver.recv().await {
                    Ok(shared) => match &*shared {
                        Shared::Item { payload, mark } => {
                            if let Some(mark) = mark {
                                if last.is_some_and(|last| mark.at <= last.at) {
                                    continue;
                                }
                                last = Some(*mark);
                            }
                            yield Payload::Shared(payload.clone());
                        }
                        Shared::Lagged(skipped) => {
                            yield self.lag_error(*skipped, last);
                            return;
                        }
                        Shared::End => return,
                    },
                    Err(RecvError::Lagged(skipped)) => match self.on_lag {
                        OnLag::End => {
                            yield self.lag_error(skipped, last);
                            return;
                        }
                        OnLag::Replay => {
                            self.runner.metrics.subscription_caught_up();
                            // Taken over at a complete mark or a floor, so
                            // `last` is where its own stream would go on.
                            (self.receiver, self.covered) = self.group.resubscribe();
                            own = Some(self.run(last.map(Resume)));
                        }
                    },
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}
