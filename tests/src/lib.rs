//! Support for the hub's integration tests: a fresh PostgreSQL database per
//! test, the real application on port 0, a GraphQL client, waiting on
//! conditions with deadlines, and a TCP proxy to simulate outages.
//!
//! Tests read `DATABASE_URL` (an admin URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and, where they need it,
//! `NATS_URL` (and `NATS_SERVER_BIN` for a private server). `TEST_LOG=1` turns on tracing output.
//!
//! Layout:
//! - `cli`: `hub events` run as a process, its output read back, its peak
//!   memory.
//! - `db`: [`TestDb`], a database created for one test and dropped after.
//! - `hub`: [`TestHub`], the application serving on an ephemeral port.
//! - `wait`: [`wait_until`] and [`holds_for`].
//! - `proxy`: [`Proxy`], a TCP forwarder that can be cut and restored.
//! - `feed`: a migrated database, events written straight into the store,
//!   recording feed consumers and a command bus, for feed and store tests.
//! - `ops`: the GraphQL operations tests send, and [`ops::Response`].
//! - `graphql`: [`graphql::data`], a field of a GraphQL answer or a failure
//!   that shows its errors, and [`graphql::view`] into a typed view.
//! - `views`: typed views of the hub's answers (a project, an event, a
//!   page, a read model's status, a REST event, `/health`).
//! - `nats_server`: [`NatsServer`], a private `nats-server` to stop and
//!   restart, and [`NatsCluster`], three of them as one JetStream cluster.
//! - `jetstream`: reading a hub's stream back, and the hub's `/health`.
//! - `ws`: [`ws::WsClient`], a GraphQL WebSocket client for both protocols.
//! - `rest`: a client for the REST event API and its event socket.
//! - `rebuild`: live read-model runners, a generated project history and
//!   read-model snapshots, for the rebuild tests.
//! - `process`: building, running and signalling the workspace's programs.
//! - `orchestration`: hubs with the `shell` orchestrator and a scratch
//!   directory for the files their commands write and wait on.
//! - `pg_server`: [`PgServer`], a private PostgreSQL cluster to stop and restart.
//! - `raw`: HTTP/1.1 by hand, with any `Host` and `Content-Type`.
//! - `spawned`: [`spawned::SpawnedHub`], a real `hub` process on a database of
//!   its own, for the tests that replay attacks against it.
//! - `browser`: [`browser::Browser`], a headless Chromium driven over
//!   WebDriver, that records every request its pages make.
//! - `reliability`: real `hub` processes to kill and restart, a command load
//!   that records what was acknowledged, and the store/stream/read-model
//!   agreement check (the `reliability` suite).

pub mod browser;
pub mod cli;
pub mod db;
pub mod feed;
pub mod graphql;
pub mod hub;
pub mod jetstream;
pub mod nats_server;
pub mod ops;
pub mod orchestration;
pub mod pg_server;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod rebuild;
pub mod reliability;
pub mod rest;
pub mod spawned;
pub mod views;
pub mod wait;
pub mod ws;

pub use db::TestDb;
pub use hub::TestHub;
pub use nats_server::{NatsCluster, NatsServer};
pub use pg_server::PgServer;
pub use proxy::Proxy;
pub use wait::{holds_for, wait_until};

/// Turns on logging when `TEST_LOG` is set.
pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_test_writer()
            .try_init();
    }
}
