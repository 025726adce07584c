//! Connecting to PostgreSQL and applying the schema.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::error::InfraError;

/// The migrations in the repository's `migrations/` folder, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How the hub connects to PostgreSQL.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// Connection URL, e.g. `postgres://postgres@127.0.0.1:5432/hub`.
    pub url: String,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// How long a request waits for a connection before it fails as unavailable.
    /// Keeps a database outage from hanging requests.
    pub acquire_timeout: Duration,
}

impl DbConfig {
    /// A config with the hub's defaults for the given URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 32,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Builds a lazily connecting pool: the hub starts even while the database is
/// down and reports it as unavailable until it answers.
///
/// # Errors
/// Fails when the URL cannot be parsed.
pub fn connect_lazy(config: &DbConfig) -> Result<PgPool, InfraError> {
    let mut options: PgConnectOptions = config.url.parse().map_err(InfraError::Database)?;
    // Named, so that an operator reading pg_stat_activity (or the feed's
    // report of who holds it back) can tell the hub's sessions apart.
    if options.get_application_name().is_none() {
        options = options.application_name("hub");
    }
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.acquire_timeout)
        // No ping before each use (it costs a round trip per query): a
        // connection broken by a database restart fails its next query, which
        // is reported as UNAVAILABLE, and is then discarded by the pool.
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

/// Applies every pending migration.
///
/// # Errors
/// Fails when the database is unreachable or a migration fails.
pub async fn migrate(pool: &PgPool) -> Result<(), InfraError> {
    MIGRATOR.run(pool).await.map_err(InfraError::Migrate)
}

/// Whether the database answers a trivial query.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .is_ok()
}

/// `url` with its database name replaced by `database` (query kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
