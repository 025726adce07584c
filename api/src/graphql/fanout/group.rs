//! One shared stream: the operation run once, each response serialized
//! once and broadcast to the group's members with its mark, until the
//! operation ends or its last member leaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_graphql::Response;
use futures::stream::BoxStream;
use futures::StreamExt as _;
use infrastructure::feed::FeedPosition;
use tokio::sync::{broadcast, Notify};

use super::key::Key;
use super::serialize;
use super::tap::{Floor, Mark, Tap, Yielded};

/// The open groups, by key.
pub(super) type Registry = Arc<Mutex<HashMap<Key, Arc<Group>>>>;

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a group broadcasts.
#[derive(Debug)]
pub(super) enum Shared {
    /// A response, serialized; `mark` is `None` for an error of the
    /// operation (delivered to every member that has taken over).
    Item {
        payload: Arc<str>,
        mark: Option<Mark>,
    },
    /// The operation fell this many events behind the live feed and ended
    /// (`events`): each member writes its own error, naming its own cursor.
    Lagged(u64),
    /// The operation ended.
    End,
}

/// How far the group's items reach back, as read by a member after it
/// subscribed: every item the group has broadcast stands at or before
/// it, and every later one will reach the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Covered {
    /// The operation has not started (nor failed) yet.
    Unknown,
    /// Nothing broadcast yet, from a live start with no position
    /// (`events` without `after`).
    FromJoin,
    /// Everything broadcast stands at or before this position.
    Through(FeedPosition),
}

/// One shared stream and its members.
pub(super) struct Group {
    key: Key,
    sender: broadcast::Sender<Arc<Shared>>,
    buffer: usize,
    state: Mutex<State>,
    /// Changed only under the registry's lock, except when a member leaves.
    members: AtomicUsize,
    left: Notify,
}

struct State {
    covered: Covered,
    /// Whether the operation runs (from the second member on).
    started: bool,
    /// False once it has failed or ended: no member takes it over then,
    /// and a newcomer starts a group of its own.
    open: bool,
}

impl Group {
    /// A group for `key`, with no member yet; `buffer` items may wait for
    /// a member.
    pub(super) fn new(key: Key, buffer: usize) -> Arc<Self> {
        let buffer = buffer.max(1);
        Arc::new(Self {
            key,
            sender: broadcast::channel(buffer).0,
            buffer,
            state: Mutex::new(State {
                covered: Covered::Unknown,
                started: false,
                open: true,
            }),
            members: AtomicUsize::new(0),
            left: Notify::new(),
        })
    }

    /// Adds a member (under the registry's lock): its receiver, what the
    /// group covered when it subscribed, and whether the operation is to
    /// be started now (it has a second member).
    pub(super) fn join(&self) -> (broadcast::Receiver<Arc<Shared>>, Covered, bool) {
        let members = self.members.fetch_add(1, Ordering::AcqRel) + 1;
        let receiver = self.sender.subscribe();
        let mut state = lock(&self.state);
        let start = members >= 2 && !state.started;
        state.started |= start;
        (receiver, state.covered, start)
    }

    /// A receiver from now on, and what the group covered then (for a
    /// member starting over after it fell behind).
    pub(super) fn resubscribe(&self) -> (broadcast::Receiver<Arc<Shared>>, Covered) {
        let receiver = self.sender.subscribe();
        (receiver, self.covered())
    }

    /// What the group has covered so far.
    pub(super) fn covered(&self) -> Covered {
        lock(&self.state).covered
    }

    /// How many items may wait for a member.
    pub(super) fn buffer(&self) -> usize {
        self.buffer
    }

    /// Whether members may still take the group over.
    pub(super) fn is_open(&self) -> bool {
        lock(&self.state).open
    }

    /// A member left: the last one ends the group.
    pub(super) fn leave(self: &Arc<Self>, registry: &Registry) {
        if self.members.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        if lock(&self.state).started {
            // The pump ends it, unless a member joins meanwhile.
            self.left.notify_one();
        } else {
            self.abandon(registry);
        }
    }

    fn cover(&self, floor: Option<Floor>, through: Option<FeedPosition>) {
        let mut state = lock(&self.state);
        if let Some(floor) = floor {
            if state.covered == Covered::Unknown {
                state.covered = match floor {
                    Floor::Now => Covered::FromJoin,
                    Floor::After(at) => Covered::Through(at),
                };
            }
        }
        if let Some(at) = through {
            state.covered = match state.covered {
                Covered::Through(was) if was > at => Covered::Through(was),
                _ => Covered::Through(at),
            };
        }
    }

    fn close(&self) {
        lock(&self.state).open = false;
    }

    /// Ends the group if no member is left; whether it did.
    fn abandon(self: &Arc<Self>, registry: &Registry) -> bool {
        let mut groups = lock(registry);
        if self.members.load(Ordering::Acquire) > 0 {
            return false;
        }
        self.forget(&mut groups);
        true
    }

    fn forget(self: &Arc<Self>, groups: &mut HashMap<Key, Arc<Group>>) {
        if groups
            .get(&self.key)
            .is_some_and(|group| Arc::ptr_eq(group, self))
        {
            groups.remove(&self.key);
        }
        self.close();
    }
}

/// Runs the group's operation (`run`, recording into `tap`) and broadcasts
/// each response, serialized once, until it ends or no member is left.
pub(super) async fn pump(
    group: Arc<Group>,
    registry: Registry,
    mut run: BoxStream<'static, Response>,
    tap: Tap,
) {
    enum Step {
        Left,
        Floor,
        /// The next response, serialized, with its record.
        Response(Option<(String, Option<Yielded>)>),
    }
    let mut floored = false;
    loop {
        let step = tokio::select! {
            biased;
            () = group.left.notified() => Step::Left,
            response = run.next() => Step::Response(response.map(|response| (serialize(&response), tap.take()))),
            () = tap.floored(), if !floored => Step::Floor,
        };
        let shared = match step {
            Step::Left if group.abandon(&registry) => return,
            Step::Left => continue,
            Step::Floor => {
                floored = true;
                group.cover(tap.recorded_floor(), None);
                continue;
            }
            Step::Response(None) => break,
            Step::Response(Some((payload, yielded))) => match yielded {
                Some(Yielded::Item(mark)) => {
                    group.cover(None, Some(mark.at));
                    Shared::Item {
                        payload: payload.into(),
                        mark: Some(mark),
                    }
                }
                Some(Yielded::Lagged(skipped)) => {
                    group.close();
                    Shared::Lagged(skipped)
                }
                None => {
                    group.close();
                    Shared::Item {
                        payload: payload.into(),
                        mark: None,
                    }
                }
            },
        };
        // No receiver is fine: the last member may just have left.
        let _ = group.sender.send(Arc::new(shared));
    }
    group.forget(&mut lock(&registry));
    let _ = group.sender.send(Arc::new(Shared::End));
}
