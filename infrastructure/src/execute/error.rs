//! [`CommandError`]: why a command was not executed, keeping the
//! rejection (the domain said no) apart from the system's failures.

use cqrs_es::AggregateError;
use domain::ProjectError;

use crate::error::{is_unavailable_boxed, InfraError};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a command was not executed; nothing changed. `R` is the domain's
/// reason for a rejection: [`ProjectError`] for project commands.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<R = ProjectError> {
    /// The domain rejected the command.
    #[error(transparent)]
    Rejected(R),
    /// `expected_version` did not match, or the command kept losing races.
    #[error("{}", conflict_message(*.expected, *.actual))]
    Conflict {
        /// What the client expected.
        expected: Option<u64>,
        /// What the store holds.
        actual: u64,
    },
    /// The database cannot be reached; retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A bug or corrupt data.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

fn conflict_message(expected: Option<u64>, actual: u64) -> String {
    match expected {
        Some(expected) => format!(
            "the project is at version {actual}, not the expected version {expected}; reload it and try again"
        ),
        None => "the project was changed concurrently; reload it and try again".to_owned(),
    }
}

impl<R: std::error::Error> CommandError<R> {
    /// A failure to load the aggregate, as cqrs-es reports it.
    pub(crate) fn from_load(err: AggregateError<R>) -> Self {
        match err {
            AggregateError::UserError(err) => Self::Rejected(err),
            AggregateError::AggregateConflict => Self::Conflict {
                expected: None,
                actual: 0,
            },
            AggregateError::DatabaseConnectionError(err) => Self::Unavailable(err),
            AggregateError::DeserializationError(err) => Self::Internal(err),
            AggregateError::UnexpectedError(err) => Self::from_boxed(err),
        }
    }

    /// A failed lookup of the facts a decision needs.
    pub(crate) fn from_infra(err: InfraError) -> Self {
        if err.is_unavailable() {
            Self::Unavailable(Box::new(err))
        } else {
            Self::Internal(Box::new(err))
        }
    }

    /// A failed query.
    pub(crate) fn from_sqlx(err: sqlx::Error) -> Self {
        Self::from_boxed(Box::new(err))
    }

    /// A bug: something that cannot fail did.
    pub(crate) fn internal(err: impl Into<BoxError>) -> Self {
        Self::Internal(err.into())
    }

    fn from_boxed(err: BoxError) -> Self {
        if is_unavailable_boxed(err.as_ref()) {
            Self::Unavailable(err)
        } else {
            Self::Internal(err)
        }
    }
}
