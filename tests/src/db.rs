//! A database of its own for each test.

use std::net::SocketAddr;
use std::str::FromStr as _;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The admin URL tests create databases from.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub use infrastructure::db::with_database;

/// Applies the hub's migrations that come before the one whose description
/// contains `description`: the schema an earlier version left, for tests
/// of what that migration does at upgrade.
///
/// # Panics
/// When no migration has that description, or migrating fails.
pub async fn migrate_before(pool: &sqlx::PgPool, description: &str) {
    let all = &infrastructure::db::MIGRATOR.migrations;
    let before = all
        .iter()
        .position(|m| m.description.contains(description))
        .unwrap_or_else(|| panic!("no migration is described as {description:?}"));
    let older = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(all[..before].to_vec()),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    older.run(pool).await.expect("apply the earlier migrations");
}

/// Replaces the host and port of a PostgreSQL URL with `addr`, keeping the
/// user, password, database and parameters (to route a hub through a
/// [`crate::Proxy`]).
pub fn with_address(url: &str, addr: SocketAddr) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let userinfo = authority
        .rfind('@')
        .map_or(String::new(), |i| authority[..=i].to_owned());
    format!(
        "{}{userinfo}{addr}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    )
}

/// The socket address of the server a PostgreSQL URL names.
///
/// # Panics
/// When the URL cannot be parsed or its host not resolved.
pub async fn server_address(url: &str) -> SocketAddr {
    let options = PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
    let mut addresses = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .expect("resolve the PostgreSQL host");
    addresses
        .next()
        .expect("the PostgreSQL host has an address")
}

/// A database created for one test, dropped (with its connections) when the
/// value is dropped.
pub struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    /// Creates an empty database.
    ///
    /// # Panics
    /// When PostgreSQL is not reachable at `DATABASE_URL`.
    pub async fn create() -> Self {
        let name = format!("hub_test_{}", Uuid::new_v4().simple());
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|err| {
            panic!("cannot reach PostgreSQL at DATABASE_URL ({admin}): {err}")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = with_database(&admin, &name);
        Self { name, url }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL with its host and port replaced by `addr`.
    pub fn url_via(&self, addr: SocketAddr) -> String {
        with_address(&self.url, addr)
    }

    /// How many events the store holds (read from `events` itself, not from
    /// the event log that follows it).
    pub async fn event_count(&self) -> i64 {
        let mut conn = PgConnection::connect(&self.url)
            .await
            .expect("connect to test database");
        let count = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&mut conn)
            .await
            .expect("count events");
        let _ = conn.close().await;
        count
    }

    /// A new pool on the database.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect(&self.url)
            .await
            .expect("connect to test database")
    }
}

/// A transaction of another session holding `table` so that no one else
/// can read or write it until the transaction ends.
///
/// # Panics
/// When the lock cannot be taken.
pub async fn lock_table(
    pool: &sqlx::PgPool,
    table: &str,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut blocker = pool.begin().await.expect("begin");
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *blocker)
        .await
        .unwrap_or_else(|err| panic!("lock {table}: {err}"));
    blocker
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = admin_url();
        // Drop runs outside any async context guarantee: use a thread with
        // its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
        drop(dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::{with_address, with_database};

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }

    #[test]
    fn addresses_are_replaced_in_urls() {
        let addr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            with_address("postgres://u:p@db.example:5432/x?sslmode=disable", addr),
            "postgres://u:p@127.0.0.1:4000/x?sslmode=disable"
        );
        assert_eq!(
            with_address("postgres://h/x", addr),
            "postgres://127.0.0.1:4000/x"
        );
    }
}
