//! Correlation ids: taken from `X-Correlation-ID` (or made up), carried on
//! the request's tracing span and into every event, echoed in the response.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;

/// The header name.
pub const HEADER: &str = "x-correlation-id";

/// The correlation id of the current request (a request extension).
#[derive(Clone, Debug)]
pub struct CorrelationId(pub String);

/// A client-sent id is used when it is 1-128 characters of letters, digits
/// and `-_.:`; anything else is replaced, never echoed.
pub fn acceptable(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Middleware: assigns the correlation id and the request span.
pub async fn correlate(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id = %id
    );
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_plain_correlation_ids_are_kept() {
        assert!(acceptable("req-42:a.b_c"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable(&"x".repeat(129)));
        assert!(!acceptable("<script>"));
    }
}
