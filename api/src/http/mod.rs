//! HTTP plumbing around the GraphQL API: the server and its bounds,
//! correlation ids, auth, body limits, health, the GraphQL WebSocket.

pub mod auth;
pub mod correlation;
pub mod health;
pub mod limits;
pub mod server;
pub mod ws;
