//! HTTP around the GraphQL API: the server and its bounds, who may talk
//! to the hub (host, origin, token), correlation ids, body limits, GraphQL
//! over HTTP and over WebSocket, the console page, health.

pub mod access;
pub mod auth;
pub mod console;
pub mod correlation;
pub mod graphql;
pub mod health;
pub mod limits;
mod query_repair;
pub mod server;
pub mod ws;
