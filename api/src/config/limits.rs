//! What one client may ask of the hub: GraphQL cost, HTTP connections and
//! bodies, WebSockets and their subscriptions.

use std::time::Duration;

use clap::Args;

use crate::graphql::door::DoorLimits;

/// Limits on GraphQL operations (see `graphql::door`).
#[derive(Debug, Clone, Args)]
pub struct GraphqlArgs {
    /// Deepest accepted GraphQL query.
    #[arg(long, env = "HUB_GRAPHQL_MAX_DEPTH", default_value_t = 12)]
    pub graphql_max_depth: usize,

    /// Highest accepted GraphQL query complexity: each field counts once per
    /// item of the pages around it (`first`, or the default page of 50).
    #[arg(long, env = "HUB_GRAPHQL_MAX_COMPLEXITY", default_value_t = 50_000)]
    pub graphql_max_complexity: usize,

    /// Most fields one operation may select, counted with its fragments
    /// expanded.
    #[arg(long, env = "HUB_GRAPHQL_MAX_FIELDS", default_value_t = 1000)]
    pub graphql_max_fields: usize,

    /// Most operations in one batched GraphQL request (a JSON array).
    #[arg(long, env = "HUB_GRAPHQL_MAX_BATCH", default_value_t = 10)]
    pub graphql_max_batch: usize,

    /// Milliseconds a query may run before it is stopped with QUERY_TIMEOUT
    /// (mutations are bounded by their own steps instead).
    #[arg(long, env = "HUB_GRAPHQL_TIMEOUT_MS", default_value_t = 10_000)]
    pub graphql_timeout_ms: u64,

    /// Answer GraphQL introspection queries (`__schema`, `__type`); turn off
    /// on a public deployment that should not describe its API.
    #[arg(long, env = "HUB_GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,
}

impl Default for GraphqlArgs {
    fn default() -> Self {
        Self {
            graphql_max_depth: 12,
            graphql_max_complexity: 50_000,
            graphql_max_fields: 1000,
            graphql_max_batch: 10,
            graphql_timeout_ms: 10_000,
            graphql_introspection: true,
        }
    }
}

/// Limits on HTTP connections and requests.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Largest accepted request body in bytes.
    #[arg(long, env = "HUB_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// Most connections open at once (WebSockets included, which may hold
    /// three quarters of them). A connection past it first closes the
    /// oldest one that has no request in progress, else the oldest stuck
    /// for 2 s on its client; when there is none, it is answered 503.
    #[arg(long, env = "HUB_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Seconds a client has to send a request's headers (counted from the
    /// connection's start, or from the end of its previous response).
    #[arg(long, env = "HUB_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,

    /// Seconds a client has to send a request's whole body once its headers
    /// arrived; then it is answered 408.
    #[arg(long, env = "HUB_HTTP_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub http_body_timeout_secs: u64,

    /// Seconds a keep-alive connection may stay idle between requests.
    #[arg(long, env = "HUB_HTTP_IDLE_TIMEOUT_SECS", default_value_t = 5)]
    pub http_idle_timeout_secs: u64,
}

impl Default for HttpArgs {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_connections: 1024,
            http_header_timeout_secs: 10,
            http_body_timeout_secs: 30,
            http_idle_timeout_secs: 5,
        }
    }
}

impl HttpArgs {
    /// The server's view of these flags.
    pub fn server_limits(&self) -> crate::http::server::ServerLimits {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        crate::http::server::ServerLimits {
            max_connections: self.max_connections.max(1),
            header_timeout: secs(self.http_header_timeout_secs),
            body_timeout: secs(self.http_body_timeout_secs),
            idle_timeout: secs(self.http_idle_timeout_secs),
        }
    }
}

/// Limits on WebSockets (`/graphql/ws`, `/api/events/stream`), the SSE
/// event stream and live subscriptions.
#[derive(Debug, Clone, Args)]
pub struct WsArgs {
    /// Events a subscriber may fall behind before it is told to resume with `after`.
    #[arg(long, env = "HUB_SUBSCRIBER_BUFFER", default_value_t = 1024)]
    pub subscriber_buffer: usize,

    /// Seconds a WebSocket may stay open without `connection_init`.
    #[arg(long, env = "HUB_WS_INIT_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_init_timeout_secs: u64,

    /// Largest accepted WebSocket message in bytes.
    #[arg(long, env = "HUB_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,

    /// Most GraphQL subscriptions open at once on one WebSocket.
    #[arg(long, env = "HUB_WS_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub ws_max_subscriptions: usize,

    /// Most GraphQL subscriptions open at once in the whole process.
    #[arg(long, env = "HUB_MAX_SUBSCRIPTIONS", default_value_t = 10_000)]
    pub max_subscriptions: usize,

    /// Seconds between `: keepalive` comments on a quiet SSE event stream
    /// (`GET /api/events/stream` with `Accept: text/event-stream`).
    #[arg(long, env = "HUB_SSE_KEEPALIVE_SECS", default_value_t = 15)]
    pub sse_keepalive_secs: u64,
}

impl Default for WsArgs {
    fn default() -> Self {
        Self {
            subscriber_buffer: 1024,
            ws_init_timeout_secs: 10,
            ws_max_message_bytes: 64 * 1024,
            ws_max_subscriptions: 100,
            max_subscriptions: 10_000,
            sse_keepalive_secs: 15,
        }
    }
}

/// The GraphQL door's limits from the GraphQL and WebSocket flags.
pub fn door_limits(graphql: &GraphqlArgs, ws: &WsArgs) -> DoorLimits {
    DoorLimits {
        max_fields: graphql.graphql_max_fields,
        max_depth: graphql.graphql_max_depth,
        max_complexity: graphql.graphql_max_complexity,
        query_timeout: Duration::from_millis(graphql.graphql_timeout_ms.max(1)),
        max_subscriptions_per_socket: ws.ws_max_subscriptions,
        max_subscriptions: ws.max_subscriptions,
    }
}
