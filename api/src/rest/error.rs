//! Errors of the REST API as clients see them:
//! `{"error": {"code": "...", "message": "..."}}` with a fitting status.
//! Internal details are logged here and never sent.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use infrastructure::PublishError;
use projections::QueryError;
use serde::Serialize;
use utoipa::ToSchema;

/// A REST request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The request is well-formed JSON but its values are not acceptable (422).
    #[error("{0}")]
    Invalid(String),
    /// The body is not JSON at all (400).
    #[error("{0}")]
    MalformedJson(String),
    /// The body is larger than the limit (413).
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// The body is not declared as JSON (415).
    #[error("the request body must be JSON, sent with 'Content-Type: application/json'")]
    NotJson,
    /// The body did not arrive in time (408).
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The hub's token is required and was not given (401).
    #[error(
        "this operation needs the hub's API token: send the header 'Authorization: Bearer <token>'"
    )]
    Unauthenticated,
    /// Nothing by that id, or no route at that path (404).
    #[error("{0}")]
    NotFound(String),
    /// The path exists, but not for this method (405, with `Allow`).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A plain request for the event stream, which is served only as a
    /// WebSocket or as Server-Sent Events (406).
    #[error(
        "GET /api/events/stream is a stream of events: upgrade to a WebSocket, or send 'Accept: text/event-stream' for Server-Sent Events"
    )]
    NotAStream,
    /// The database is down; retry later (503).
    #[error("the hub's database is unavailable right now; try again shortly")]
    Unavailable,
    /// The query ran longer than the hub lets a read run, and was stopped
    /// (503).
    #[error("the query ran longer than the hub allows (HUB_DB_READ_TIMEOUT_MS) and was stopped; narrow its filter or ask for fewer events")]
    QueryTimeout,
    /// A bug (500).
    #[error("an internal error occurred; it has been logged (quote the X-Correlation-ID response header)")]
    Internal,
}

impl RestError {
    /// Bad input, with what to fix.
    pub fn invalid(message: impl std::fmt::Display) -> Self {
        Self::Invalid(message.to_string())
    }

    /// The database could not be reached; logs the cause.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "request failed: database unavailable");
        Self::Unavailable
    }

    /// A bug; logs the cause, tells the client only that it happened.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed with an internal error");
        Self::Internal
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAStream => StatusCode::NOT_ACCEPTABLE,
            Self::Unavailable | Self::QueryTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "INVALID_INPUT",
            Self::MalformedJson(_) => "MALFORMED_JSON",
            Self::TooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::BodyTimeout => "REQUEST_TIMEOUT",
            Self::NotJson => "UNSUPPORTED_MEDIA_TYPE",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::NotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            Self::NotAStream => "NOT_ACCEPTABLE",
            Self::Unavailable => "UNAVAILABLE",
            Self::QueryTimeout => "QUERY_TIMEOUT",
            Self::Internal => "INTERNAL",
        }
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
/// (Refusals of the access layer add the GraphQL shape's `errors` beside
/// it.)
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine code: `INVALID_INPUT`, `MALFORMED_JSON`,
    /// `PAYLOAD_TOO_LARGE`, `REQUEST_TIMEOUT`, `UNSUPPORTED_MEDIA_TYPE`,
    /// `UNAUTHENTICATED`, `FORBIDDEN`, `MISDIRECTED_REQUEST`, `NOT_FOUND`,
    /// `METHOD_NOT_ALLOWED`, `NOT_ACCEPTABLE`, `UNAVAILABLE`, `QUERY_TIMEOUT`, `INTERNAL`.
    #[schema(example = "INVALID_INPUT")]
    pub code: String,
    /// What to fix, in words.
    pub message: String,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
            },
        });
        if matches!(self, Self::Unauthenticated) {
            return (self.status(), [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (self.status(), body).into_response()
    }
}

impl From<QueryError> for RestError {
    fn from(err: QueryError) -> Self {
        match &err {
            QueryError::Cursor(cursor) => Self::invalid(cursor),
            _ if err.is_unavailable() => Self::unavailable(&err),
            _ if err.is_timeout() => {
                tracing::warn!(error = %err, "a read ran past its statement timeout");
                Self::QueryTimeout
            }
            _ if err.is_bad_value() => {
                tracing::warn!(error = %err, "the database refused a value of a query");
                Self::invalid("a value in the request cannot be compared with stored data (e.g. it holds a NUL character)")
            }
            _ => Self::internal(&err),
        }
    }
}

impl From<PublishError> for RestError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Rejected(rejection) => Self::invalid(rejection),
            PublishError::Unavailable(cause) => Self::unavailable(&cause),
            PublishError::Internal(cause) => Self::internal(&cause),
        }
    }
}
