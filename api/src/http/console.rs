//! `GET /graphql`: a small GraphQL console of the hub's own (HTML, CSS and
//! an ES module, embedded in the binary), so that trying the API needs no
//! CDN and no request leaves the machine. HTML answers carry a strict
//! Content Security Policy: only the hub's own scripts, styles and
//! connections, and no framing.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The policy of the hub's HTML pages.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// A static asset of the hub's own, revalidated on every use.
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// An HTML page of the hub's own, under [`CONTENT_SECURITY_POLICY`], never
/// framed and sending no referrer.
pub fn html_page(body: &'static str) -> Response {
    let mut response = asset("text/html; charset=utf-8", body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The GraphQL console page.
pub async fn page() -> Response {
    html_page(INDEX)
}

/// The console's script.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The console's style sheet.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// The console's assets: `GET /graphql/console.js` and `/graphql/console.css`
/// (its page is `GET /graphql` without a query, in [`super::graphql`]).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/graphql/console.js", get(script))
        .route("/graphql/console.css", get(style))
}
