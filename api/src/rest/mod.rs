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
use axum::http::{Method, Uri};
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

/// Any path the hub does not serve: a typed 404, like every other refusal.
pub async fn no_route(method: Method, uri: Uri) -> RestError {
    RestError::NotFound(format!(
        "the hub serves nothing at {method} {}: its APIs are /graphql and /api/events (see /openapi.json)",
        shortened(uri.path())
    ))
}

/// A path the hub serves, asked with another method: a typed 405 (axum
/// adds the `Allow` header).
pub async fn method_not_allowed(method: Method, uri: Uri) -> RestError {
    RestError::MethodNotAllowed(format!(
        "{} does not take {method}: the Allow header lists the methods it takes",
        shortened(uri.path())
    ))
}

/// A client's path as an error message quotes it: at most 200 characters.
fn shortened(path: &str) -> String {
    const MAX: usize = 200;
    match path.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &path[..end]),
        None => path.to_owned(),
    }
}
