//! The hub's API: GraphQL (queries and mutations) and health over axum, and
//! the application that wires the store, the feed and the read models
//! together. `main.rs` only parses the configuration and calls into here.
//!
//! Layout:
//! - `config`: flags and environment variables.
//! - `app`: [`App`], building and serving the application.
//! - `graphql`: schema, query and mutation roots, types, client errors.
//! - `http`: correlation ids, auth, body limits, health.
//! - `telemetry`: logging.

pub mod app;
pub mod config;
pub mod graphql;
pub mod http;
pub mod telemetry;

pub use app::{App, AppState};
pub use config::{Cli, Command, ServeConfig};
