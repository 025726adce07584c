//! Errors as clients see them: a stable code and a sentence they can act on.
//! Internal details are logged here and never sent.

use async_graphql::ErrorExtensions as _;
use domain::ProjectError;
use infrastructure::CommandError;
use projections::QueryError;

/// The stable machine code in `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The thing asked for does not exist.
    NotFound,
    /// The request itself is malformed.
    InvalidInput,
    /// Another live project has this name.
    NameTaken,
    /// Not allowed in the project's current state.
    InvalidTransition,
    /// A stale `expectedVersion` or a lost race.
    Conflict,
    /// A token is required.
    Unauthenticated,
    /// A dependency is down; retry later.
    Unavailable,
    /// A cursor the hub cannot resume from: start again without it.
    ResyncRequired,
    /// A read ran longer than the hub lets one run; ask for less.
    QueryTimeout,
    /// A bug; see the server log.
    Internal,
}

impl ErrorCode {
    /// The code's wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "NOT_FOUND",
            Self::InvalidInput => "INVALID_INPUT",
            Self::NameTaken => "NAME_TAKEN",
            Self::InvalidTransition => "INVALID_TRANSITION",
            Self::Conflict => "CONFLICT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Unavailable => "UNAVAILABLE",
            Self::ResyncRequired => "RESYNC_REQUIRED",
            Self::QueryTimeout => "QUERY_TIMEOUT",
            Self::Internal => "INTERNAL",
        }
    }
}

/// An error ready to be sent to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Machine code.
    pub code: ErrorCode,
    /// Human sentence.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Bad input, with what to fix.
    pub fn invalid_input(message: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidInput, message.to_string())
    }

    /// The database could not be reached; logs the cause.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "request failed: database unavailable");
        Self::new(
            ErrorCode::Unavailable,
            "the hub's database is unavailable right now; try again shortly",
        )
    }

    /// A statement of a read ran past `HUB_DB_READ_TIMEOUT_MS` and
    /// PostgreSQL stopped it.
    pub fn query_timeout() -> Self {
        Self::new(
            ErrorCode::QueryTimeout,
            "the query ran longer than the hub allows (HUB_DB_READ_TIMEOUT_MS) and was stopped; narrow its filter or ask for less",
        )
    }

    /// A database error outside a query of the read models: UNAVAILABLE
    /// when the database cannot be reached, INTERNAL otherwise.
    pub fn database(err: &sqlx::Error) -> Self {
        if infrastructure::error::is_unavailable(err) {
            Self::unavailable(err)
        } else {
            Self::internal(err)
        }
    }

    /// A bug; logs the cause, tells the client only that it happened.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed with an internal error");
        Self::new(
            ErrorCode::Internal,
            "an internal error occurred; it has been logged (quote the X-Correlation-ID response header)",
        )
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        async_graphql::Error::new(err.message)
            .extend_with(|_, ext| ext.set("code", err.code.as_str()))
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        match &err {
            QueryError::Cursor(cursor) => Self::invalid_input(cursor),
            _ if err.is_unavailable() => Self::unavailable(&err),
            _ if err.is_timeout() => {
                tracing::warn!(error = %err, "a read ran past its statement timeout");
                Self::query_timeout()
            }
            _ if err.is_bad_value() => {
                tracing::warn!(error = %err, "the database refused a value of a query");
                Self::invalid_input("a value in the request cannot be compared with stored data (e.g. it holds a NUL character)")
            }
            _ => Self::internal(&err),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(err: CommandError) -> Self {
        match err {
            CommandError::Rejected(rejection) => {
                let code = match &rejection {
                    ProjectError::NotFound => ErrorCode::NotFound,
                    ProjectError::NameTaken { .. } => ErrorCode::NameTaken,
                    ProjectError::InvalidName(_) => ErrorCode::InvalidInput,
                    ProjectError::AlreadyExists => ErrorCode::Conflict,
                    ProjectError::PortsExhausted => ErrorCode::Unavailable,
                    ProjectError::AlreadyRunning
                    | ProjectError::AlreadyStarting
                    | ProjectError::AlreadyStopping
                    | ProjectError::NotRunning
                    | ProjectError::Deleted
                    | ProjectError::StillRunning
                    | ProjectError::RequestNotPending { .. } => ErrorCode::InvalidTransition,
                };
                Self::new(code, rejection.to_string())
            }
            conflict @ CommandError::Conflict { .. } => {
                Self::new(ErrorCode::Conflict, conflict.to_string())
            }
            CommandError::Unavailable(cause) => Self::unavailable(&cause),
            CommandError::Internal(cause) => Self::internal(&cause),
        }
    }
}
