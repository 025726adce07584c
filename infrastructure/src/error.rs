//! Errors of the infrastructure layer.

/// A failure of the system (database, broker), as opposed to a rejected command.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// A query or connection failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A stored row could not be decoded.
    #[error("stored data is malformed: {0}")]
    Malformed(String),
}

impl From<sqlx::Error> for InfraError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err)
    }
}

impl InfraError {
    /// Whether the failure means "the database cannot be reached right now"
    /// (retryable, reported to clients as UNAVAILABLE) rather than a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(err) => is_unavailable(err),
            Self::Migrate(sqlx::migrate::MigrateError::Execute(err)) => is_unavailable(err),
            _ => false,
        }
    }
}

/// Whether a boxed error (as cqrs-es and postgres-es hand them out) is a
/// sqlx error meaning the database is unreachable.
pub fn is_unavailable_boxed(err: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    err.downcast_ref::<sqlx::Error>()
        .is_some_and(is_unavailable)
}

/// Whether a sqlx error means the database is unreachable, shutting down or
/// out of connections.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        // A connection closed during the handshake (e.g. by a proxy in front
        // of a stopped server) surfaces as a protocol error.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P0x: admin/crash shutdown,
            // cannot connect now; 53300: too many connections.
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}
