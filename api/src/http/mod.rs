//! HTTP plumbing around the GraphQL API: correlation ids, auth, limits, health.

pub mod auth;
pub mod correlation;
pub mod health;
pub mod limits;
pub mod ws;
