//! The hub's API: GraphQL (queries and mutations) and health over axum, and
//! the application that wires the store, the feed and the read models
//! together. `main.rs` only parses the configuration and calls into here.
//!
//! Layout:
//! - `config`: flags and environment variables.
//! - `app`: [`App`], building and serving the application.
//! - `cli`: `hub projections list` and `hub projections rebuild`.
//! - `graphql`: schema, query and mutation roots, types, client errors.
//! - `http`: correlation ids, auth, body limits, health.
//! - `rest`: the REST event API (`/api/events`) and its event socket.
//! - `metrics`: Prometheus metrics (`/metrics`).
//! - `rebuilds`: read-model rebuilds a serving hub runs in the background.
//! - `telemetry`: logging.

pub mod app;
pub mod cli;
pub mod config;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod rebuilds;
pub mod rest;
pub mod telemetry;

pub use app::{App, AppState};
pub use config::{Cli, Command, ServeConfig};
