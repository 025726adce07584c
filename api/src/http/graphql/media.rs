//! What a GraphQL request over HTTP may send and is answered in: the body
//! must be declared JSON, and the answer's media type (and so its status
//! codes) follows `Accept`.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::http::access;

/// The answer's media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `application/graphql-response+json`: status codes say whether the
    /// request was valid.
    GraphqlResponseJson,
    /// `application/json`: always 200 once the request is a GraphQL request.
    Json,
}

impl MediaType {
    const GRAPHQL_RESPONSE_JSON: &'static str = "application/graphql-response+json";

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        })
    }
}

/// The media type for `accept`: the supported one with the highest
/// quality, the earlier on a tie; `application/json` when none is listed.
pub fn negotiate(accept: Option<&str>) -> MediaType {
    let Some(accept) = accept else {
        return MediaType::Json;
    };
    let mut best: Option<(f32, MediaType)> = None;
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let range = parts.next().unwrap_or("").to_ascii_lowercase();
        let quality = parts
            .find_map(|p| p.strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let media = match range.as_str() {
            MediaType::GRAPHQL_RESPONSE_JSON => MediaType::GraphqlResponseJson,
            "application/json" | "application/*" | "*/*" => MediaType::Json,
            _ => continue,
        };
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, media));
        }
    }
    best.map_or(MediaType::Json, |(_, media)| media)
}

/// Whether `headers` declare a JSON body (`application/json`, any
/// parameters, UTF-8 if a charset is named).
pub fn declares_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or("");
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|p| match p.split_once('=') {
            Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => charset
                .trim()
                .trim_matches('"')
                .eq_ignore_ascii_case("utf-8"),
            _ => true,
        })
}

/// 415 for a body that is not declared as JSON.
pub fn not_json() -> Response {
    access::refusal(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "the request body must be JSON, sent with 'Content-Type: application/json'",
    )
}

/// A GraphQL-shaped error answer for a request that never reached the engine.
pub(super) fn error(status: StatusCode, media: MediaType, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    answer(status, media, &body)
}

pub(super) fn answer(status: StatusCode, media: MediaType, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_media_type_follows_accept() {
        use MediaType::{GraphqlResponseJson as Grj, Json};
        assert_eq!(negotiate(None), Json);
        assert_eq!(negotiate(Some("application/json")), Json);
        assert_eq!(negotiate(Some("*/*")), Json);
        assert_eq!(negotiate(Some("application/graphql-response+json")), Grj);
        assert_eq!(
            negotiate(Some(
                "application/graphql-response+json,application/json;q=0.9"
            )),
            Grj
        );
        assert_eq!(
            negotiate(Some("application/json, application/graphql-response+json")),
            Json
        );
        assert_eq!(
            negotiate(Some(
                "application/json;q=0.5, application/graphql-response+json"
            )),
            Grj
        );
        assert_eq!(negotiate(Some("text/html")), Json);
    }

    #[test]
    fn only_json_bodies_are_accepted() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            declares_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=UTF-8"));
        assert!(!with("application/json; charset=latin1"));
        assert!(!with("text/plain"));
        assert!(!with("text/plain;charset=UTF-8"));
        assert!(!with("multipart/form-data; boundary=x"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!declares_json(&HeaderMap::new()));
    }
}
