//! Why the hub did not give what `hub events` asked, as one sentence each:
//! unreachable, too slow, a missing or refused token, a refusal with the
//! REST error's message, or an answer that cannot be read.

use reqwest::StatusCode;
use serde::Deserialize;

/// Why the hub did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--hub-url` is not an http(s) URL.
    #[error("{url:?} is not a hub URL ({why}); expected e.g. http://127.0.0.1:9001")]
    BadUrl {
        /// The URL given, redacted.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// No connection, or it broke.
    #[error("cannot reach the hub at {url}: {cause} (is it running? set --hub-url or HUB_URL)")]
    Unreachable {
        /// The hub's URL, redacted.
        url: String,
        /// The innermost cause.
        cause: String,
    },
    /// A streamed answer stopped short.
    #[error("the connection to the hub at {url} broke: {cause}")]
    ConnectionLost {
        /// The hub's URL, redacted.
        url: String,
        /// The innermost cause.
        cause: String,
    },
    /// The hub did not answer in time.
    #[error("the hub at {url} did not answer within {seconds} s")]
    Timeout {
        /// The hub's URL, redacted.
        url: String,
        /// How long was waited.
        seconds: u64,
    },
    /// 401: no token, or the wrong one.
    #[error("the hub at {url} {}", if *.sent { "refused the API token: check HUB_API_TOKEN" } else { "needs its API token: set HUB_API_TOKEN (or HUB_API_TOKEN_FILE)" })]
    Unauthenticated {
        /// The hub's URL, redacted.
        url: String,
        /// Whether a token was sent.
        sent: bool,
    },
    /// Another status than success, with the REST error's message when the
    /// body is one.
    #[error("the hub refused the request (HTTP {status}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The REST error's `code`.
        code: Option<String>,
        /// The REST error's `message`, or what the status means.
        message: String,
    },
    /// The answer is not what the REST API sends.
    #[error("the hub's answer could not be read: {0}")]
    BadAnswer(String),
}

impl ClientError {
    /// Whether trying again later may succeed: the hub is away, slow, or
    /// says it is unavailable.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. }
            | Self::ConnectionLost { .. }
            | Self::Timeout { .. }
            | Self::BadAnswer(_) => true,
            Self::Refused { status, .. } => *status >= 500,
            Self::BadUrl { .. } | Self::Unauthenticated { .. } => false,
        }
    }
}

/// A refusal: the REST error's code and message, or the status and the
/// start of the body.
pub(super) fn refused(status: StatusCode, body: &[u8]) -> ClientError {
    #[derive(Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        code: String,
        message: String,
    }
    if let Ok(Body { error }) = serde_json::from_slice::<Body>(body) {
        return ClientError::Refused {
            status: status.as_u16(),
            code: Some(error.code),
            message: one_line(&error.message),
        };
    }
    let text = one_line(&String::from_utf8_lossy(body));
    let reason = status.canonical_reason().unwrap_or("no reason given");
    ClientError::Refused {
        status: status.as_u16(),
        code: None,
        message: if text.is_empty() {
            reason.to_owned()
        } else {
            format!("{reason}: {text}")
        },
    }
}

/// At most 200 characters, without line breaks or control characters.
fn one_line(text: &str) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > 200 {
        format!("{}...", flat.chars().take(200).collect::<String>())
    } else {
        flat
    }
}

/// The deepest cause of a transport error (`Connection refused (os error
/// 111)`), which names the problem better than reqwest's own sentence.
pub(super) fn innermost(err: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    one_line(&cause.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_quote_the_rest_error_or_the_status() {
        let body = br#"{"error":{"code":"INVALID_INPUT","message":"limit must be\na number"}}"#;
        let err = refused(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            err.to_string(),
            "the hub refused the request (HTTP 422, INVALID_INPUT): limit must be a number"
        );
        assert!(!err.is_transient());
        let err = refused(StatusCode::NOT_FOUND, b"");
        assert_eq!(
            err.to_string(),
            "the hub refused the request (HTTP 404): Not Found"
        );
        assert!(refused(StatusCode::SERVICE_UNAVAILABLE, b"").is_transient());
        let long = "x".repeat(5000);
        assert!(
            refused(StatusCode::BAD_GATEWAY, long.as_bytes())
                .to_string()
                .len()
                < 300
        );
    }
}
