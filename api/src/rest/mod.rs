//! The REST event API of the original event-system design:
//!
//! - `POST /api/events`: publish an integration event ([`publish`]).
//! - `GET /api/events`, `GET /api/events/{id}`: read the event log ([`query`]).
//! - `GET /api/events/stream`: events as they are recorded, over a
//!   WebSocket ([`stream`]) or as Server-Sent Events ([`sse`]).
//! - `GET /openapi.json`: this API's contract ([`openapi`]).
//!
//! Errors are `{"error": {"code", "message"}}` ([`error`]).

pub mod error;
pub mod openapi;
mod params;
pub mod publish;
pub mod query;
pub mod sse;
pub mod stream;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use self::error::RestError;
use crate::state::AppState;

/// The REST routes, with their own body limit of `max_body` bytes (answered
/// in the REST error shape). Merge them where no other body limit applies.
pub fn router(max_body: usize) -> Router<AppState> {
    Router::new()
        .route("/api/events", get(query::list).post(publish::publish))
        .route("/api/events/stream", get(stream::stream))
        .route("/api/events/{id}", get(query::one))
        .route("/openapi.json", get(openapi::document))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            reject_large_bodies(max_body, request, next)
        }))
}

/// Refuses a declared body larger than `max` bytes before reading it;
/// bodies without a length are capped while they are read.
async fn reject_large_bodies(max: usize, request: Request, next: Next) -> Response {
    if crate::http::limits::declares_more_than(&request, max) {
        return RestError::TooLarge(max).into_response();
    }
    next.run(request).await
}
