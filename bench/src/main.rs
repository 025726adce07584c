//! `hub-bench`: drives a real hub over its real interfaces and measures it
//! against the machine's own limits in the same run (see docs/PERFORMANCE.md).
//!
//! Scenarios so far: `commands` (GraphQL mutations beside a raw sqlx loop)
//! `relay` (commit-to-JetStream latency and backlog drain) and
//! `subscriptions` (delivery latency to many WebSocket subscribers) and
//! `rebuild` (events per second rebuilding the read models).

mod commands;
mod hub_process;
mod raw;
mod rebuild;
mod relay;
mod stats;
mod subscriptions;

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
    /// Client counts to measure, e.g. `16` or `1,16,64` (default: 1,16,64; quick: 1,4).
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// createProject calls per concurrency level (default 2000; quick 20).
    #[arg(long)]
    creates: Option<usize>,
    /// Seconds of start/stop cycles per level (default 10; quick 0.5).
    #[arg(long)]
    cycle_seconds: Option<f64>,
    /// Scenarios to run (default: all).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "commands,relay,subscriptions,rebuild"
    )]
    scenarios: Vec<Scenario>,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// GraphQL mutations beside a raw sqlx loop.
    Commands,
    /// Commit-to-JetStream latency and backlog drain.
    Relay,
    /// Delivery latency to many WebSocket subscribers.
    Subscriptions,
    /// Events per second rebuilding the read models.
    Rebuild,
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
                "{:>5} {:<10} {:>9.0} {:>7.2} {:>7.2} {:>7.2} {:>6} {:>9.0} {:>7.2} {:>6.0}%",
                r.concurrency,
                op,
                api.throughput,
                api.p50_ms,
                api.p95_ms,
                api.p99_ms,
                api.errors,
                raw.throughput,
                raw.p99_ms,
                ratio * 100.0
            );
        }
        let sizes: Vec<String> = r
            .create_batch_sizes
            .iter()
            .map(|(consumer, size)| format!("{consumer} {size:.1}"))
            .collect();
        if !sizes.is_empty() {
            println!(
                "      events per feed batch during creates: {}",
                sizes.join(", ")
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
    let mut config = if args.quick {
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
    if let Some(levels) = &args.concurrency {
        config.concurrency = levels.clone();
    }
    if let Some(creates) = args.creates {
        config.creates_per_level = creates;
    }
    if let Some(seconds) = args.cycle_seconds {
        config.cycle_duration = Duration::from_secs_f64(seconds);
    }
    let relay_config = if args.quick {
        relay::RelayConfig {
            rate: 100,
            duration: Duration::from_secs(1),
            backlog: 1000,
        }
    } else {
        relay::RelayConfig {
            rate: 500,
            duration: Duration::from_secs(10),
            backlog: 100_000,
        }
    };
    let started = Instant::now();
    let mut report = serde_json::Map::new();
    let mut produced = true;
    if args.scenarios.contains(&Scenario::Commands) {
        let hub = HubProcess::start(&hub_binary, &args.database_url, &args.nats_url).await?;
        let raw = RawDatabase::create(&args.database_url, &hub_binary).await?;
        let outcome = commands::run(&hub, &raw.url, &config).await;
        let peak_rss = hub.peak_rss_mib();
        hub.shutdown().await;
        raw.drop_database().await;
        let results = outcome?;
        print_commands(&results);
        print_rss(peak_rss);
        produced &= results
            .iter()
            .all(|r| r.create_api.ops > 0 && r.cycle_api.ops > 0 && r.create_raw.ops > 0);
        report.insert(
            "commands".into(),
            json!({ "results": results, "hub_peak_rss_mib": peak_rss }),
        );
    }
    if args.scenarios.contains(&Scenario::Relay) {
        let hub = HubProcess::start(&hub_binary, &args.database_url, &args.nats_url).await?;
        let outcome = relay::run(&hub, &relay_config).await;
        let peak_rss = hub.peak_rss_mib();
        hub.shutdown().await;
        let result = outcome?;
        println!("scenario relay");
        println!(
            "  commit-to-stream at {}/s: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms ({} delivered, {} missing)",
            result.rate, result.latency.p50_ms, result.latency.p95_ms, result.latency.p99_ms, result.latency.ops, result.latency.errors
        );
        println!(
            "  backlog of {} drained at {:.0} events/s",
            result.backlog, result.drain_per_second
        );
        print_rss(peak_rss);
        produced &= result.latency.ops > 0 && result.drain_per_second > 0.0;
        report.insert(
            "relay".into(),
            json!({ "result": result, "hub_peak_rss_mib": peak_rss }),
        );
    }
    if args.scenarios.contains(&Scenario::Subscriptions) {
        let config = if args.quick {
            subscriptions::SubscriptionsConfig {
                subscribers: 20,
                rate: 10,
                duration: Duration::from_secs(1),
            }
        } else {
            subscriptions::SubscriptionsConfig {
                subscribers: 1000,
                rate: 20,
                duration: Duration::from_secs(10),
            }
        };
        let hub = HubProcess::start(&hub_binary, &args.database_url, &args.nats_url).await?;
        let outcome = subscriptions::run(&hub, &config).await;
        let peak_rss = hub.peak_rss_mib();
        hub.shutdown().await;
        let result = outcome?;
        println!("scenario subscriptions");
        println!(
            "  {} subscribers, {} mutations: delivery p50 {:.2} ms, p99 {:.2} ms ({} deliveries, {} missing)",
            result.subscribers, result.mutations, result.delivery.p50_ms, result.delivery.p99_ms, result.delivery.ops, result.delivery.errors
        );
        print_rss(peak_rss);
        produced &= result.delivery.ops > 0;
        report.insert(
            "subscriptions".into(),
            json!({ "result": result, "hub_peak_rss_mib": peak_rss }),
        );
    }
    if args.scenarios.contains(&Scenario::Rebuild) {
        let config = if args.quick {
            rebuild::RebuildConfig {
                projects: 100,
                events_per_project: 20,
            }
        } else {
            rebuild::RebuildConfig {
                projects: 10_000,
                events_per_project: 100,
            }
        };
        let runs = rebuild::run(&hub_binary, &args.database_url, &config).await?;
        println!("scenario rebuild");
        for run in &runs {
            println!(
                "  {}: {} events in {:.1} s = {:.0} events/s (peak RSS of the rebuilding process: {})",
                run.name,
                run.events,
                run.seconds,
                run.events_per_second,
                run.peak_rss_mib.map_or("unknown".to_owned(), |m| format!("{m:.1} MiB"))
            );
        }
        produced &= runs
            .iter()
            .all(|r| r.events > 0 && r.events_per_second > 0.0);
        report.insert("rebuild".into(), json!({ "runs": runs }));
    }
    if let Some(path) = &args.json {
        report.insert("quick".into(), json!(args.quick));
        report.insert("elapsed_s".into(), json!(started.elapsed().as_secs_f64()));
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("while writing {}", path.display()))?;
    }
    if !produced {
        bail!("a scenario produced no measurements");
    }
    Ok(())
}

fn print_rss(peak_rss: Option<f64>) {
    println!(
        "  hub peak RSS: {}",
        peak_rss.map_or("unknown".to_owned(), |m| format!("{m:.1} MiB"))
    );
}
