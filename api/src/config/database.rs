//! The database: how to reach PostgreSQL, and the two pools the hub keeps
//! there, one for what writes and one for clients' reads.

use std::time::Duration;

use clap::Args;

/// How to reach PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Most pooled database connections that write: commands, published
    /// events, the feeds, health and metrics.
    #[arg(long, env = "HUB_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,

    /// Milliseconds a request waits for a database connection before it
    /// fails with UNAVAILABLE.
    #[arg(long, env = "HUB_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 3000)]
    pub db_acquire_timeout_ms: u64,
}

impl DatabaseArgs {
    /// The infrastructure's view of these flags.
    pub fn db_config(&self) -> infrastructure::db::DbConfig {
        infrastructure::db::DbConfig {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            application_name: "hub",
            statement_timeout: None,
        }
    }
}

/// The pool of clients' reads, apart from the pool that writes.
#[derive(Debug, Clone, Args)]
pub struct ReadPoolArgs {
    /// Most database connections serving clients' reads (queries, event
    /// pages, the catch-up of subscriptions and streams), in a pool of
    /// their own: reads that wait or run long never take the connections
    /// that commands, the feeds and the health checks use.
    #[arg(long, env = "HUB_DB_READ_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub db_read_connections: u32,

    /// Milliseconds one statement of a client's read may run before
    /// PostgreSQL cancels it; the read then fails with QUERY_TIMEOUT. 0
    /// leaves the server's own `statement_timeout` (none unless set).
    #[arg(long, env = "HUB_DB_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub db_read_timeout_ms: u64,

    /// Most rows of the event log one page of events reads (at least its
    /// size) when its filter has no index of its own (event types,
    /// `until`, `since`, a subject pattern beside other filters). A page that
    /// reads them all without filling up answers what it found, even
    /// nothing, and its next cursor continues after the last row read.
    #[arg(long, env = "HUB_EVENTS_PAGE_SCAN_ROWS",
          default_value_t = projections::DEFAULT_PAGE_SCAN,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub events_page_scan_rows: u32,
}

impl ReadPoolArgs {
    /// The read pool's config: `database`'s, with these bounds.
    pub fn db_config(&self, database: &DatabaseArgs) -> infrastructure::db::DbConfig {
        infrastructure::db::DbConfig {
            max_connections: self.db_read_connections,
            application_name: "hub-reads",
            statement_timeout: (self.db_read_timeout_ms > 0)
                .then(|| Duration::from_millis(self.db_read_timeout_ms)),
            ..database.db_config()
        }
    }
}
