//! What the handlers share, defined once. `App::build` (`app.rs`) fills
//! it; a handler takes the whole [`AppState`] or only the part it needs
//! (`State<Hub>`, `State<Arc<Access>>`, ...: axum's `FromRef`, derived on
//! [`AppState`] for each of its parts).
//!
//! - [`Hub`]: the hub's own handles, which GraphQL and REST both use.
//! - [`GraphqlState`]: what the GraphQL resolvers add; it is the schema's
//!   data (`ctx.data::<GraphqlState>()`).
//! - [`RestState`]: what the REST handlers add.
//! - [`AppState`]: all of that, with the HTTP server's own parts.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use infrastructure::nats::LiveFeed;
use infrastructure::{CommandBus, IntegrationPublisher, Origin};
use projections::{ReadModels, ReadYourWrites};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::feeds::Feeds;
use crate::graphql::door::OpenSubscriptions;
use crate::graphql::fanout::Fanout;
use crate::graphql::{HubSchema, LiveReaders};
use crate::http::access::Access;
use crate::http::server::{Connections, SocketSlots};
use crate::metrics::Metrics;
use crate::rebuilds::Rebuilds;

/// The hub's own handles: its id, what it reads and the live events.
#[derive(Clone)]
pub struct Hub {
    /// This hub's id (`HUB_ID`): its subjects are `hub.<id>.…`.
    pub id: String,
    /// Answers clients' reads: queries, event pages and the catch-up of
    /// subscriptions and streams, on a pool of their own whose statements
    /// PostgreSQL cancels after `HUB_DB_READ_TIMEOUT_MS`.
    pub read: ReadModels,
    /// The pool that writes: commands, the feeds, the operator's views
    /// (health, metrics, the read models' status, parked events and their
    /// repair). Clients' reads never hold its connections.
    pub(crate) writes: PgPool,
    /// Live events from NATS, fanned out to subscribers.
    pub live: Arc<LiveFeed>,
    /// An answer to a write waits here until the read models show it.
    pub read_your_writes: ReadYourWrites,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

impl Hub {
    /// The pool that writes; clients' reads use [`Hub::read`]'s.
    pub fn pool(&self) -> &PgPool {
        &self.writes
    }

    /// The origin recorded on events of a request by `user`.
    pub fn origin(&self, user: &str) -> Origin {
        Origin {
            hub_id: self.id.clone(),
            service: "hub-api".to_owned(),
            user: user.to_owned(),
        }
    }
}

/// What the GraphQL resolvers need, shared by every request.
#[derive(Clone)]
pub struct GraphqlState {
    /// What every part of the hub shares.
    pub hub: Hub,
    /// Runs commands.
    pub bus: Arc<CommandBus>,
    /// Background rebuilds of the read models started by this process.
    pub rebuilds: Rebuilds,
    /// The subscription streams reading the live feed.
    pub live_readers: LiveReaders,
}

/// What the REST handlers need besides the [`Hub`].
#[derive(Clone)]
pub struct RestState {
    /// Records integration events.
    pub publisher: Arc<IntegrationPublisher>,
    /// How long an SSE event stream stays quiet before a keepalive comment.
    pub sse_keepalive: Duration,
}

/// The NATS connection, for health reports and size limits.
#[derive(Clone)]
pub struct Nats {
    /// The client.
    pub client: async_nats::Client,
    /// Where NATS is, as configured (shown without credentials).
    pub url: String,
}

/// What one client may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Most operations in one batched GraphQL request.
    pub max_batch: usize,
    /// How long a WebSocket may stay open without `connection_init`.
    pub ws_init_timeout: Duration,
    /// Largest accepted WebSocket message.
    pub ws_max_message_bytes: usize,
}

/// Turns true when the hub starts shutting down. SSE streams end then, and
/// WebSockets close with 1001 (going away): the server waits for answers
/// in progress and for open sockets, and neither ends by itself.
#[derive(Clone, Debug)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// Follows `stopping`, which the application sets to true to stop.
    pub fn new(stopping: watch::Receiver<bool>) -> Self {
        Self(stopping)
    }

    /// Completes when the hub starts shutting down.
    pub async fn stopped(self) {
        let mut stopping = self.0;
        // An error means the application is gone: stop too.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }
}

/// Shared by every HTTP handler.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// What GraphQL and REST both use.
    pub hub: Hub,
    /// The GraphQL schema (its data is a [`GraphqlState`]).
    pub schema: HubSchema,
    /// Runs the operations of GraphQL sockets, sharing one stream between
    /// subscribers of the same subscription.
    pub fanout: Arc<Fanout>,
    /// GraphQL subscriptions open in this process.
    pub subscriptions: Arc<OpenSubscriptions>,
    /// What only the REST handlers need.
    pub rest: RestState,
    /// Who may do what: the token, allowed origins and hosts.
    pub access: Arc<Access>,
    /// The feed consumers running (or standing by) in this process.
    pub feeds: Arc<Feeds>,
    /// The NATS connection.
    pub nats: Nats,
    /// What one client may send.
    pub limits: Limits,
    /// How long an event-writing transaction may hold the feed back before
    /// `/health` names it.
    #[from_ref(skip)]
    pub feed_stall_warn: Duration,
    /// The HTTP connections open, and room for more.
    pub connections: Arc<Connections>,
    /// The WebSockets open, and room for more.
    pub sockets: Arc<SocketSlots>,
    /// When the hub starts shutting down.
    pub stopping: Stopping,
}
