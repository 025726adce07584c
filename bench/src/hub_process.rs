//! A real `hub serve` process with a database and stream of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use infrastructure::nats::StreamSettings;
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::database::BenchDatabase;

pub use infrastructure::db::with_database;

/// Peak resident memory (`VmHWM`) of a running process, in MiB.
pub fn peak_rss_mib_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The `hub` binary built next to this one.
pub fn default_hub_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("hub")))
        .unwrap_or_else(|| PathBuf::from("hub"))
}

/// A running hub.
pub struct HubProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its hub id.
    pub hub_id: String,
    /// Its database.
    pub database_url: String,
    /// Its NATS server.
    pub nats_url: String,
    database: BenchDatabase,
}

impl HubProcess {
    /// Creates a database and starts `hub serve` on it, on a free port.
    ///
    /// # Errors
    /// When the database cannot be created or the hub does not become healthy.
    pub async fn start(binary: &Path, admin_url: &str, nats_url: &str) -> anyhow::Result<Self> {
        let database = BenchDatabase::create(admin_url, "hub_bench").await?;
        let hub_id = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
        Self::start_on(binary, database, &hub_id, nats_url).await
    }

    /// Starts `hub serve` as `hub_id` on `database` (which it migrates if
    /// needed, and owns from now on), on a free port.
    ///
    /// # Errors
    /// When the hub does not become healthy.
    pub async fn start_on(
        binary: &Path,
        database: BenchDatabase,
        hub_id: &str,
        nats_url: &str,
    ) -> anyhow::Result<Self> {
        let database_url = database.url.clone();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(binary)
            .arg("serve")
            .env("DATABASE_URL", &database_url)
            .env("NATS_URL", nats_url)
            .env("HUB_ID", hub_id)
            .env("HUB_BIND", format!("127.0.0.1:{port}"))
            .env("HUB_PORT_RANGE", "1024-65535")
            .env("HUB_DB_MAX_CONNECTIONS", "32")
            // WebSockets may take three quarters of the connections: the
            // default 1,024 would hold the `subscriptions` scenario's 1,000
            // subscribers at 768, and 10,000 need more than 13,334 (the hub
            // keeps the cap below its open-file limit).
            .env("HUB_MAX_CONNECTIONS", "16000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("while starting {}", binary.display()))?;
        let hub = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            hub_id: hub_id.to_owned(),
            database_url,
            database,
            nats_url: nats_url.to_owned(),
        };
        hub.wait_healthy(Duration::from_secs(30)).await?;
        hub.wait_for_stream(Duration::from_secs(30)).await?;
        Ok(hub)
    }

    /// Waits until the hub has made its JetStream stream (its relay does so
    /// once it has reached NATS, which may come after `/health` answers).
    async fn wait_for_stream(&self, timeout: Duration) -> anyhow::Result<()> {
        let js = async_nats::jetstream::new(async_nats::connect(&self.nats_url).await?);
        let stream = StreamSettings::default_name(&self.hub_id);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if js.get_stream(&stream).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the hub did not make its stream {stream} within {timeout:?}")
    }

    async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(resp) = client.get(format!("{}/health", self.url)).send().await {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the hub at {} did not become healthy within {timeout:?}",
            self.url
        )
    }

    /// Peak resident memory of the hub process in MiB (`VmHWM`).
    pub fn peak_rss_mib(&self) -> Option<f64> {
        peak_rss_mib_of(self.child.id()?)
    }

    /// Stops the hub and removes its database and stream.
    pub async fn shutdown(mut self) {
        let _ = self.child.kill().await;
        self.database.drop_database().await;
        if let Ok(client) = async_nats::connect(&self.nats_url).await {
            let js = async_nats::jetstream::new(client);
            let _ = js
                .delete_stream(StreamSettings::default_name(&self.hub_id))
                .await;
        }
    }
}
