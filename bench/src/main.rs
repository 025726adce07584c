//! `hub-bench`: drives a real hub over its real interfaces and measures it
//! against the machine's own limits in the same run (see docs/PERFORMANCE.md).
//!
//! Scenarios so far: `commands` (GraphQL mutations beside a raw sqlx loop).

mod commands;
mod hub_process;
mod stats;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::hub_process::{default_hub_binary, with_database, HubProcess};

/// Measures the hub.
#[derive(Debug, Parser)]
#[command(name = "hub-bench", about)]
struct Args {
    /// Run every scenario small (seconds): proves the harness works, measures nothing worth quoting.
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Admin PostgreSQL URL; the bench creates (and drops) its own databases.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// NATS server for the hub.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The `hub` binary to start (default: the one built next to hub-bench).
    #[arg(long)]
    hub_binary: Option<PathBuf>,
}

/// A database migrated with the hub's schema (via `hub migrate`), for the raw loop.
struct RawDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl RawDatabase {
    async fn create(admin_url: &str, hub_binary: &std::path::Path) -> anyhow::Result<Self> {
        let name = format!("hub_bench_raw_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let url = with_database(admin_url, &name);
        let status = tokio::process::Command::new(hub_binary)
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .status()
            .await
            .context("while running hub migrate")?;
        if !status.success() {
            bail!("hub migrate failed on the raw database");
        }
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    async fn drop_database(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

fn print_commands(results: &[commands::CommandsResult]) {
    println!("scenario commands (throughput in ops/s, latency in ms)");
    println!(
        "{:>5} {:<10} {:>9} {:>7} {:>7} {:>7} {:>6} {:>9} {:>7} {:>7}",
        "conc", "op", "api ops/s", "p50", "p95", "p99", "errors", "raw ops/s", "raw p99", "api/raw"
    );
    for r in results {
        for (op, api, raw, ratio) in [
            ("create", &r.create_api, &r.create_raw, r.create_ratio),
            ("start/stop", &r.cycle_api, &r.cycle_raw, r.cycle_ratio),
        ] {
            println!(
                "{:>5} {:<8} {:>9.0} {:>7.2} {:>7.2} {:>7.2} {:>9.0} {:>7.2} {:>6.0}%",
                r.concurrency,
                op,
                api.throughput,
                api.p50_ms,
                api.p95_ms,
                api.p99_ms,
                raw.throughput,
                raw.p99_ms,
                ratio * 100.0
            );
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let hub_binary = args.hub_binary.clone().unwrap_or_else(default_hub_binary);
    if !hub_binary.exists() {
        bail!(
            "no hub binary at {}: build it first (cargo build --release -p api)",
            hub_binary.display()
        );
    }
    let config = if args.quick {
        commands::CommandsConfig {
            concurrency: vec![1, 4],
            creates_per_level: 20,
            cycle_duration: Duration::from_millis(500),
        }
    } else {
        commands::CommandsConfig {
            concurrency: vec![1, 16, 64],
            creates_per_level: 2000,
            cycle_duration: Duration::from_secs(10),
        }
    };
    let started = Instant::now();
    let hub = HubProcess::start(&hub_binary, &args.database_url, &args.nats_url).await?;
    let raw = RawDatabase::create(&args.database_url, &hub_binary).await?;
    let outcome = commands::run(&hub, &raw.url, &config).await;
    let peak_rss = hub.peak_rss_mib();
    hub.shutdown().await;
    raw.drop_database().await;
    let results = outcome?;
    print_commands(&results);
    println!(
        "hub peak RSS: {}",
        peak_rss.map_or("unknown".to_owned(), |m| format!("{m:.1} MiB"))
    );
    let produced = results
        .iter()
        .all(|r| r.create_api.ops > 0 && r.cycle_api.ops > 0 && r.create_raw.ops > 0);
    if let Some(path) = &args.json {
        let report = json!({
            "quick": args.quick,
            "elapsed_s": started.elapsed().as_secs_f64(),
            "commands": results,
            "hub_peak_rss_mib": peak_rss,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("while writing {}", path.display()))?;
    }
    if !produced {
        bail!("a scenario produced no measurements");
    }
    Ok(())
}
