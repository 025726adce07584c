//! Request body size limit with a clear answer.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Refuses a declared body larger than `max` bytes with 413 and a GraphQL
/// shaped error; bodies without a length are capped by a stream limit layer.
pub async fn reject_large_bodies(max: usize, request: Request, next: Next) -> Response {
    if declares_more_than(&request, max) {
        return too_large(max);
    }
    next.run(request).await
}

/// Whether the request's `Content-Length` announces more than `max` bytes.
pub fn declares_more_than(request: &Request, max: usize) -> bool {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > max as u64)
}

/// The 413 answer.
pub fn too_large(max: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(json!({
            "errors": [{
                "message": format!("the request body is larger than the limit of {max} bytes"),
                "extensions": { "code": "INVALID_INPUT" }
            }]
        })),
    )
        .into_response()
}
