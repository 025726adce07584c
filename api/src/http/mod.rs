//! HTTP around the GraphQL API: the server and its bounds, who may talk
//! to the hub (host, origin, token), correlation ids, body limits, GraphQL
//! over HTTP and over WebSocket, the GraphQL console, the hub console
//! (`GET /`), health.

pub mod access;
pub mod auth;
pub mod console;
pub mod correlation;
pub mod graphql;
pub mod health;
pub mod hub_console;
pub mod limits;
mod query_repair;
pub mod server;
pub mod ws;
