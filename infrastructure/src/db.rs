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
    /// The sessions' `application_name` in `pg_stat_activity` (unless the
    /// URL names one), so that an operator can tell the pools apart.
    pub application_name: &'static str,
    /// The longest a statement runs before PostgreSQL cancels it
    /// (`statement_timeout` of every session of the pool, sent in its
    /// startup packet; SQLSTATE 57014). None leaves the server's own.
    pub statement_timeout: Option<Duration>,
}

impl DbConfig {
    /// A config with the hub's defaults for the given URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 32,
            acquire_timeout: Duration::from_secs(3),
            application_name: "hub",
            statement_timeout: None,
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
        options = options.application_name(config.application_name);
    }
    if let Some(timeout) = config.statement_timeout {
        // Set at connect, in the startup packet: no round trip per query.
        options = options.options([("statement_timeout", format!("{}ms", timeout.as_millis()))]);
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

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::MIGRATOR;

    /// SHA-384 of each released migration, as sqlx records it in
    /// `_sqlx_migrations.checksum` when it applies one. A database refuses to
    /// migrate once an applied migration's file changes, comments included,
    /// so these stay as they are: the schema changes by a new migration, and
    /// old comments are corrected in `migrations/README.md`.
    const RELEASED: [(i64, &str); 13] = [
        (1, "d9301cbb99ac95dc1def42b868107d81d59e3d4bc1730dc87a3c9b7db0cc32125699dcbb5661b37213fc1e4a7fca9a13"),
        (2, "d2146058f83f38c198718b15cb77284ff04b49121002b3d99e7ce7344dd069062dec2c4d751aa9de7d6da50589420955"),
        (3, "47732c5c88b8cd812c52b27739b27d7642a82408ab3640286f0e2fed3576e4fb6174be376db0027f1772107f8e7e529f"),
        (4, "d79dac43faf613a40e7a30c874bb2d05f57d2fbca2e845b6865c3bf94ce6f0731410e75ceee419c0441fc33d5476d834"),
        (5, "0e9c5f1f7c5d95a32b5d5acec8c9efe07396133119787e41fa9c1aeba2b484b065b9a83e3af0a1a608ec2f8c1ac0bfd0"),
        (6, "d23af89ea7d251fbd886497c7521e6862eba33c4cff106cb9fa9ebeaf3ad588b6ea1a19efde59431cc2e29161e9e3f0d"),
        (7, "e785cd60b2eb4b1d851a1e75b5c0deb31b3f8f2a2063bb54adbbd3e6a75225a1dff534b02be2721bfb0198546e88eb4b"),
        (8, "b74b19c61454d0b42d1db94f3f89405497104ff0ad643e6b5acba01b950e25b42e4a3f52a51eadc2e3d2cceb74bfb116"),
        (9, "81312915685c5b179aad67164ef66984f2c9181c66bddca799804fef4c513558ef2cdf26613803afe5685cea5f5a0b4e"),
        (10, "254847cc4fbf237d4b9fe724f215e14b4f10ccb91dec56411ad14530cbef174a79a06db58ac69e75a25704af3c28be6a"),
        (11, "91c44250c24ed99fac68274010c291c550c921ac4c7a6f7310eeaa42e64233ab48202725f091a439bf07317e449754a5"),
        (12, "23e84411229331925ddaacac172c67d5443daac2fe25b1f344694e7c68bb0b3ec5e8d45d7a607df505f90f6155e89b49"),
        (13, "78619b060facdfb4032079c2135c69d73d56d686b1a5cd24d48a0596accf78ae3b3e17b2bc3e48e26879ad78fda0b677"),
    ];

    #[test]
    fn released_migrations_keep_the_checksums_databases_recorded() {
        for (version, expected) in RELEASED {
            let migration = MIGRATOR
                .iter()
                .find(|migration| migration.version == version)
                .unwrap_or_else(|| panic!("released migration {version} is missing"));
            let mut checksum = String::new();
            for byte in migration.checksum.iter() {
                write!(checksum, "{byte:02x}").expect("writing to a String cannot fail");
            }
            assert_eq!(
                checksum, expected,
                "migration {version} ({}) was edited after release: databases that applied it \
                 would refuse to migrate; add a new migration instead (migrations/README.md)",
                migration.description
            );
        }
    }
}
