//! The hub's API: GraphQL queries and mutations over HTTP, GraphQL
//! subscriptions over WebSocket (`/graphql/ws`: `projectChanged`,
//! `projectsChanged`, `events`), REST with its event stream (WebSocket or
//! Server-Sent Events), health and metrics over axum, and the application
//! that wires the store, the feed, the live feed from NATS and the read
//! models together. `main.rs` only parses the configuration and calls into
//! here.
//!
//! Layout:
//! - `config`: flags and environment variables.
//! - `app`: [`App`], building and serving the application: the
//!   configuration's checks, the pool, NATS, the command bus, the feeds,
//!   the state and the router, in that order.
//! - `feeds`: [`feeds::Feeds`], the feed runners a serving hub starts.
//! - `state`: [`AppState`] and its parts, what the handlers share.
//! - `cli`: `hub projections list`, `rebuild`, `retry` and `skip`; `hub
//!   events query`, `follow` and `export` (over HTTP).
//! - `graphql`: schema, query, mutation and subscription roots, the project
//!   changes the subscriptions stream (`changes`), types, client errors, and
//!   the door (the limits every operation meets, subscriptions included).
//! - `http`: the server and its bounds, access rules (host, origin, token),
//!   GraphQL over HTTP and WebSocket (both subscription protocols), the
//!   console, body limits, health.
//! - `rest`: the REST event API (`/api/events`) and its event stream
//!   (WebSocket or Server-Sent Events).
//! - `live_events`: events replayed from the store from a point on, then
//!   live, with no gap at the seam (the subscriptions, the SSE stream).
//! - `metrics`: Prometheus metrics (`/metrics`).
//! - `natural_time`: instants as people type them (`1h ago`, `yesterday`).
//! - `rebuilds`: read-model rebuilds a serving hub runs in the background.
//! - `telemetry`: logging.

pub mod app;
pub mod cli;
pub mod config;
pub mod feeds;
pub mod graphql;
pub mod http;
pub mod live_events;
pub mod metrics;
pub mod natural_time;
pub mod rebuilds;
pub mod rest;
pub mod state;
pub mod telemetry;

pub use app::App;
pub use config::{Cli, Command, ServeConfig};
pub use state::AppState;
