//! Subscriptions shared between subscribers: subscribers whose operation
//! is the same (the same document, formatting aside, the same operation,
//! variables and access) share one run of it, so each change is folded,
//! resolved and serialized once, however many subscribe; each socket only
//! frames the shared bytes with its own subscription id.
//!
//! - [`Fanout::start`] runs one operation a socket sent: it takes the
//!   operation's place in the door's count (per socket and per process),
//!   then shares it when it can (`key`) or runs it on its own.
//! - A group (`group`) runs the operation once it has a second member and
//!   broadcasts every response, serialized, with where it stands in the
//!   feed (`tap`: the resolvers record it).
//! - A member (`member`) runs the operation itself first, so that its
//!   current state, snapshot, replay and refusals are its own, and takes
//!   the group's items over at a point where the two agree; it runs on its
//!   own again if it falls behind them. So each subscriber gets exactly
//!   what its own stream would send, in order, with the same lag rules.
//!   A stream that only goes live (`projectChanged` without `id`, `events`
//!   without `after`) has nothing of its own to send first: it joins a
//!   running group at once, which the group's run, with the same document,
//!   variables and access, has already let through the door.
//!
//! Layout: `key` (what can be shared, and the key), `tap` (the marks the
//! resolvers record), `group` (the shared run), `member` (one subscriber).

mod group;
mod key;
mod member;
mod tap;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::{Data, Request, Response, Variables};
use futures::stream::BoxStream;
use futures::StreamExt as _;

pub use tap::{Floor, Mark, Marked, Resume, Tap};

use self::group::{lock, Group, Registry};
use self::member::{Member, Start};
use super::door::{DoorLimits, OpenSubscriptions, SocketSubscriptions, SubscriptionSlot};
use super::{HubSchema, RequestContext};
use crate::metrics::Metrics;
use crate::state::GraphqlState;

/// The JSON of one response (`{"data": ..., "errors": [...]}`), to be
/// framed by the socket.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Serialized once for every member of a shared stream.
    Shared(Arc<str>),
    /// This subscriber's own.
    Own(String),
}

impl Payload {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Shared(text) => text,
            Self::Own(text) => text,
        }
    }
}

/// A response as JSON (what async-graphql's WebSocket protocol sends as
/// a message's `payload`).
pub(crate) fn serialize(response: &Response) -> String {
    serde_json::to_string(response).unwrap_or_else(|err| {
        tracing::error!(error = %err, "a GraphQL response did not serialize");
        r#"{"data":null,"errors":[{"message":"the response could not be written","extensions":{"code":"INTERNAL"}}]}"#.to_owned()
    })
}

/// What one socket shares with the operations it runs.
#[derive(Clone)]
pub struct SocketSession {
    /// The session data of its operations: its [`RequestContext`] and the
    /// door's [`SlotHeld`](super::door::SlotHeld).
    pub data: Arc<Data>,
    /// Its access, as the operations see it.
    pub access: RequestContext,
    /// Its operations, as the door counts them.
    pub subscriptions: SocketSubscriptions,
}

/// The operations running for sockets, counted while they run.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    /// `responses`, counted until dropped.
    fn count(&self, responses: BoxStream<'static, Response>) -> BoxStream<'static, Response> {
        self.0.fetch_add(1, Ordering::Relaxed);
        let running = Running(self.0.clone());
        responses
            .map(move |response| {
                let _counted = &running;
                response
            })
            .boxed()
    }
}

struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts operations of one request, with the session's data.
struct Runner {
    schema: HubSchema,
    runs: Runs,
    metrics: Arc<Metrics>,
    query: String,
    operation_name: Option<String>,
    variables: Variables,
    session: Arc<Data>,
}

impl Runner {
    fn start(&self, tap: Tap, resume: Option<Resume>) -> BoxStream<'static, Response> {
        let mut request = Request::new(self.query.clone())
            .variables(self.variables.clone())
            .data(tap);
        if let Some(name) = &self.operation_name {
            request = request.operation_name(name.clone());
        }
        if let Some(resume) = resume {
            request = request.data(resume);
        }
        self.runs.count(
            self.schema
                .execute_stream_with_session_data(request, self.session.clone()),
        )
    }
}

/// The shared streams of this process.
pub struct Fanout {
    schema: HubSchema,
    groups: Registry,
    runs: Runs,
    open: Arc<OpenSubscriptions>,
    limits: DoorLimits,
    buffer: usize,
    metrics: Arc<Metrics>,
}

impl Fanout {
    /// Runs operations on `schema`, counting them in `open` within
    /// `limits`; `buffer` responses may wait for a member of a shared
    /// stream before it counts as fallen behind; catch-ups are counted in
    /// `metrics`.
    pub fn new(
        schema: HubSchema,
        open: Arc<OpenSubscriptions>,
        limits: DoorLimits,
        buffer: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            schema,
            groups: Arc::new(Mutex::new(HashMap::new())),
            runs: Runs::default(),
            open,
            limits,
            buffer,
            metrics,
        }
    }

    /// How many distinct subscriptions are open (each shared by its
    /// subscribers, or waiting for a second one).
    pub fn groups(&self) -> usize {
        lock(&self.groups).len()
    }

    /// How many operations run for sockets: one per shared stream, one per
    /// operation that is not shared, and one per subscriber still on its
    /// own run.
    pub fn runs(&self) -> usize {
        self.runs.0.load(Ordering::Relaxed)
    }

    /// How many of the subscription streams that run read the live feed.
    pub fn live_readers(&self) -> usize {
        self.schema
            .data::<GraphqlState>()
            .map_or(0, |state| state.live_readers.count())
    }

    /// Starts `request`, sent over a socket of `session`: its responses,
    /// as JSON, until the operation ends. Refused with TOO_MANY_SUBSCRIPTIONS
    /// (one response) when the socket or the process has as many
    /// operations running as the door allows.
    pub fn start(&self, request: Request, session: &SocketSession) -> BoxStream<'static, Payload> {
        let slot =
            match SubscriptionSlot::take(&self.open, Some(&session.subscriptions), &self.limits) {
                Ok(slot) => slot,
                Err(refusal) => {
                    let refused = serialize(&Response::from_errors(vec![refusal]));
                    return futures::stream::once(async move { Payload::Own(refused) }).boxed();
                }
            };
        let Some(shareable) = key::shareable(&request, &session.access) else {
            let responses = self
                .schema
                .execute_stream_with_session_data(request, session.data.clone());
            return self
                .runs
                .count(responses)
                .map(move |response| {
                    let _held = &slot;
                    Payload::Own(serialize(&response))
                })
                .boxed();
        };
        let runner = Runner {
            schema: self.schema.clone(),
            runs: self.runs.clone(),
            metrics: self.metrics.clone(),
            query: request.query,
            operation_name: request.operation_name,
            variables: request.variables,
            session: session.data.clone(),
        };
        let (group, receiver, covered, start) = {
            let mut groups = lock(&self.groups);
            let group = match groups.get(&shareable.key) {
                Some(group) if group.is_open() => group.clone(),
                _ => {
                    let group = Group::new(shareable.key.clone(), self.buffer);
                    groups.insert(shareable.key, group.clone());
                    group
                }
            };
            let (receiver, covered, start) = group.join();
            (group, receiver, covered, start)
        };
        // A live-only stream joins a group that has started at once.
        let begin = match shareable.starts_live && !start {
            true => Start::taken_over(covered).unwrap_or(Start::Own),
            false => Start::Own,
        };
        if start {
            let tap = Tap::default();
            let responses = runner.start(tap.clone(), None);
            tokio::spawn(group::pump(
                group.clone(),
                self.groups.clone(),
                responses,
                tap,
            ));
        }
        Member {
            group,
            receiver,
            covered,
            runner,
            on_lag: shareable.on_lag,
            field: shareable.field,
            _slot: slot,
            registry: self.groups.clone(),
        }
        .messages(begin)
        .boxed()
    }
}
