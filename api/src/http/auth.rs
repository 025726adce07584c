//! The API token check.

use axum::http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Whether `headers` carry `Authorization: Bearer <token>` for the configured
/// token; always true when no token is configured. Compares in constant time.
pub fn is_authorized(token: Option<&SecretString>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(sent) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    token_matches(token, sent)
}

/// Constant-time comparison of a sent token with the configured one.
pub fn token_matches(token: &SecretString, sent: &str) -> bool {
    bool::from(
        token
            .expose_secret()
            .as_bytes()
            .ct_eq(sent.trim().as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_configured_bearer_token_is_accepted() {
        let token = SecretString::from("s3cret");
        let mut headers = HeaderMap::new();
        assert!(is_authorized(None, &headers));
        assert!(!is_authorized(Some(&token), &headers));
        headers.insert("authorization", HeaderValue::from_static("Bearer wrong"));
        assert!(!is_authorized(Some(&token), &headers));
        headers.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        assert!(is_authorized(Some(&token), &headers));
        headers.insert("authorization", HeaderValue::from_static("s3cret"));
        assert!(!is_authorized(Some(&token), &headers));
    }
}
