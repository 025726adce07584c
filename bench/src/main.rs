//! `hub-bench`: drives a real hub over its real interfaces and measures it
//! against the machine's own limits in the same run (see docs/PERFORMANCE.md).
//!
//! Scenarios:
//! - `commands`: createProject and start/stop through GraphQL, beside a raw
//!   sqlx loop doing the same store work;
//! - `framework`: the same create through plain cqrs-es and postgres-es over
//!   axum, measured level by level with `commands`' creates (the table's
//!   "API / framework" column);
//! - `publish`: `POST /api/events` beside a raw loop inserting the same row;
//! - `relay`: commit-to-JetStream latency and backlog drain;
//! - `subscriptions`: delivery latency to many WebSocket subscribers;
//! - `rebuild`: events per second rebuilding the read models;
//! - `queries`: filtered pages of a large event log over REST and GraphQL,
//!   right after a rebuild and at steady state.
//!
//! Layout: one module per scenario (`commands` with `raw`, `framework`,
//! `publish`, `relay`, `subscriptions`, `rebuild`, `queries`), `scenarios`
//! (each run with its sizes, printed and reported), `report` (the tables),
//! `load` (closed-loop clients), `stats`, `database` and `hub_process` (the
//! bench's own databases and hub processes).

mod commands;
mod database;
mod framework;
mod hub_process;
mod load;
mod publish;
mod queries;
mod raw;
mod rebuild;
mod relay;
mod report;
mod scenarios;
mod stats;
mod subscriptions;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::json;

use crate::hub_process::default_hub_binary;

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
    /// Client counts for `commands`, `framework` and `publish`, e.g. `16` or `1,16,64` (default: 1,16,64; quick: 1,4).
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// createProject calls per concurrency level (default 2000; quick 20).
    #[arg(long)]
    creates: Option<usize>,
    /// Seconds of start/stop cycles per level (default 10; quick 0.5).
    #[arg(long)]
    cycle_seconds: Option<f64>,
    /// Events published per concurrency level in `publish` (default 2000; quick 20).
    #[arg(long)]
    publishes: Option<usize>,
    /// WebSocket subscribers in `subscriptions`, e.g. 10000 (default 1000; quick 20).
    #[arg(long)]
    subscribers: Option<usize>,
    /// Integration events seeded for `queries`, e.g. 10000000 (default 1000000; quick 5000).
    #[arg(long)]
    query_events: Option<i64>,
    /// Distinct correlation ids among them (default 100000; quick a tenth of the events).
    #[arg(long)]
    query_correlations: Option<i64>,
    /// Times each page is fetched per phase in `queries` (default 50; quick 3).
    #[arg(long)]
    query_samples: Option<usize>,
    /// Scenarios to run (default: all).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "commands,framework,publish,relay,subscriptions,rebuild,queries"
    )]
    scenarios: Vec<Scenario>,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// GraphQL mutations beside a raw sqlx loop.
    Commands,
    /// The same create through plain cqrs-es, beside `commands`' creates
    /// (alone: only the creates, no start/stop cycles).
    Framework,
    /// Integration events over REST beside a raw insert loop.
    Publish,
    /// Commit-to-JetStream latency and backlog drain.
    Relay,
    /// Delivery latency to many WebSocket subscribers.
    Subscriptions,
    /// Events per second rebuilding the read models.
    Rebuild,
    /// Filtered pages of a large event log.
    Queries,
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
    let bench = scenarios::Bench {
        hub_binary,
        admin_url: args.database_url.clone(),
        nats_url: args.nats_url.clone(),
        quick: args.quick,
    };
    let has = |scenario| args.scenarios.contains(&scenario);
    let started = Instant::now();
    let mut report = serde_json::Map::new();
    let mut produced = true;
    let mut record = |name: &str, (value, ok): (serde_json::Value, bool)| {
        report.insert(name.to_owned(), value);
        produced &= ok;
    };
    if has(Scenario::Commands) || has(Scenario::Framework) {
        let config = bench.commands_config(
            args.concurrency.as_deref(),
            args.creates,
            args.cycle_seconds,
            has(Scenario::Commands),
        );
        record(
            "commands",
            bench.commands(&config, has(Scenario::Framework)).await?,
        );
    }
    if has(Scenario::Publish) {
        let config = bench.publish_config(args.concurrency.as_deref(), args.publishes);
        record("publish", bench.publish(&config).await?);
    }
    if has(Scenario::Relay) {
        record("relay", bench.relay().await?);
    }
    if has(Scenario::Subscriptions) {
        record(
            "subscriptions",
            bench.subscriptions(args.subscribers).await?,
        );
    }
    if has(Scenario::Rebuild) {
        record("rebuild", bench.rebuild().await?);
    }
    if has(Scenario::Queries) {
        let config = bench.queries_config(
            args.query_events,
            args.query_correlations,
            args.query_samples,
        );
        record("queries", bench.queries(&config).await?);
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
