//! Each scenario with its sizes (full or `--quick`): run, printed, and
//! returned as JSON with whether it measured anything.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::commands::CommandsConfig;
use crate::database::BenchDatabase;
use crate::framework::Framework;
use crate::hub_process::HubProcess;
use crate::publish::PublishConfig;
use crate::queries::QueriesConfig;
use crate::{commands, publish, queries, rebuild, relay, report, subscriptions};

/// A scenario's JSON report and whether it produced measurements.
pub type Reported = (Value, bool);

/// What every scenario needs.
pub struct Bench {
    /// The `hub` binary.
    pub hub_binary: PathBuf,
    /// Admin PostgreSQL URL.
    pub admin_url: String,
    /// NATS server for the hubs.
    pub nats_url: String,
    /// Small sizes.
    pub quick: bool,
}

impl Bench {
    /// Runs `scenario` against a hub of its own; returns its outcome and
    /// the hub's peak RSS. The hub and its database are gone afterwards.
    async fn on_hub<T>(
        &self,
        scenario: impl AsyncFnOnce(&HubProcess) -> anyhow::Result<T>,
    ) -> anyhow::Result<(T, Option<f64>)> {
        let hub = HubProcess::start(&self.hub_binary, &self.admin_url, &self.nats_url).await?;
        let outcome = scenario(&hub).await;
        let peak_rss = hub.peak_rss_mib();
        hub.shutdown().await;
        Ok((outcome?, peak_rss))
    }

    /// Runs `scenario` on a raw database migrated with the hub's schema,
    /// dropped afterwards.
    async fn on_raw_database<T>(
        &self,
        scenario: impl AsyncFnOnce(&str) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let raw =
            BenchDatabase::migrated(&self.admin_url, "hub_bench_raw", &self.hub_binary).await?;
        let outcome = scenario(&raw.url).await;
        raw.drop_database().await;
        outcome
    }

    fn levels(&self, concurrency: Option<&[usize]>) -> Vec<usize> {
        match (concurrency, self.quick) {
            (Some(levels), _) => levels.to_vec(),
            (None, true) => vec![1, 4],
            (None, false) => vec![1, 16, 64],
        }
    }

    /// The `commands` sizes; `cycles`: whether start/stop cycles run.
    pub fn commands_config(
        &self,
        concurrency: Option<&[usize]>,
        creates: Option<usize>,
        cycle_seconds: Option<f64>,
        cycles: bool,
    ) -> CommandsConfig {
        let default_cycle = if self.quick { 0.5 } else { 10.0 };
        CommandsConfig {
            concurrency: self.levels(concurrency),
            creates_per_level: creates.unwrap_or(if self.quick { 20 } else { 2000 }),
            cycle_duration: cycles
                .then(|| Duration::from_secs_f64(cycle_seconds.unwrap_or(default_cycle))),
        }
    }

    /// `commands`, with the framework baseline when `framework`.
    pub async fn commands(
        &self,
        config: &CommandsConfig,
        framework: bool,
    ) -> anyhow::Result<Reported> {
        let baseline = match framework {
            true => Some(Framework::start(&self.admin_url).await?),
            false => None,
        };
        let outcome = self
            .on_raw_database(async |raw| {
                self.on_hub(async |hub| commands::run(hub, raw, baseline.as_ref(), config).await)
                    .await
            })
            .await;
        if let Some(baseline) = baseline {
            baseline.stop().await;
        }
        let (results, peak_rss) = outcome?;
        report::commands(&results);
        report::rss(peak_rss);
        let produced = results.iter().all(|r| {
            r.create_api.ops > 0
                && r.create_raw.ops > 0
                && r.create_framework.as_ref().is_none_or(|f| f.ops > 0)
                && r.cycles.as_ref().is_none_or(|c| c.api.ops > 0)
        });
        Ok((
            json!({ "results": results, "hub_peak_rss_mib": peak_rss }),
            produced,
        ))
    }

    /// The `publish` sizes.
    pub fn publish_config(
        &self,
        concurrency: Option<&[usize]>,
        events: Option<usize>,
    ) -> PublishConfig {
        PublishConfig {
            concurrency: self.levels(concurrency),
            events_per_level: events.unwrap_or(if self.quick { 20 } else { 2000 }),
        }
    }

    /// `publish`.
    pub async fn publish(&self, config: &PublishConfig) -> anyhow::Result<Reported> {
        let (results, peak_rss) = self
            .on_raw_database(async |raw| {
                self.on_hub(async |hub| publish::run(hub, raw, config).await)
                    .await
            })
            .await?;
        report::publish(&results);
        report::rss(peak_rss);
        let produced = results.iter().all(|r| r.api.ops > 0 && r.raw.ops > 0);
        Ok((
            json!({ "results": results, "hub_peak_rss_mib": peak_rss }),
            produced,
        ))
    }

    /// `relay`.
    pub async fn relay(&self) -> anyhow::Result<Reported> {
        let config = if self.quick {
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
        let (result, peak_rss) = self
            .on_hub(async |hub| relay::run(hub, &config).await)
            .await?;
        println!("scenario relay");
        println!(
            "  commit-to-stream at {}/s: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms ({} delivered, {} missing)",
            result.rate, result.latency.p50_ms, result.latency.p95_ms, result.latency.p99_ms, result.latency.ops, result.latency.errors
        );
        println!(
            "  backlog of {} drained at {:.0} events/s",
            result.backlog, result.drain_per_second
        );
        report::rss(peak_rss);
        let produced = result.latency.ops > 0 && result.drain_per_second > 0.0;
        Ok((
            json!({ "result": result, "hub_peak_rss_mib": peak_rss }),
            produced,
        ))
    }

    /// `subscriptions`.
    pub async fn subscriptions(&self, subscribers: Option<usize>) -> anyhow::Result<Reported> {
        let mut config = if self.quick {
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
        if let Some(subscribers) = subscribers {
            config.subscribers = subscribers.max(1);
        }
        let (result, peak_rss) = self
            .on_hub(async |hub| subscriptions::run(hub, &config).await)
            .await?;
        println!("scenario subscriptions");
        println!(
            "  {} subscribers, {} mutations: delivery p50 {:.2} ms, p99 {:.2} ms ({} deliveries, {} missing)",
            result.subscribers, result.mutations, result.delivery.p50_ms, result.delivery.p99_ms, result.delivery.ops, result.delivery.errors
        );
        report::rss(peak_rss);
        let produced = result.delivery.ops > 0;
        Ok((
            json!({ "result": result, "hub_peak_rss_mib": peak_rss }),
            produced,
        ))
    }

    /// `rebuild`.
    pub async fn rebuild(&self) -> anyhow::Result<Reported> {
        let config = if self.quick {
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
        let runs = rebuild::run(&self.hub_binary, &self.admin_url, &config).await?;
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
        let produced = runs
            .iter()
            .all(|r| r.events > 0 && r.events_per_second > 0.0);
        Ok((json!({ "runs": runs }), produced))
    }

    /// The `queries` sizes.
    pub fn queries_config(
        &self,
        events: Option<i64>,
        correlations: Option<i64>,
        samples: Option<usize>,
    ) -> QueriesConfig {
        let events = events.unwrap_or(if self.quick { 5_000 } else { 1_000_000 });
        QueriesConfig {
            events,
            correlations: correlations
                .unwrap_or(if self.quick { events / 10 } else { 100_000 })
                .max(1),
            samples: samples.unwrap_or(if self.quick { 3 } else { 50 }),
        }
    }

    /// `queries`.
    pub async fn queries(&self, config: &QueriesConfig) -> anyhow::Result<Reported> {
        let result =
            queries::run(&self.hub_binary, &self.admin_url, &self.nats_url, config).await?;
        report::queries(&result);
        let produced = !result.rows.is_empty()
            && result
                .rows
                .iter()
                .all(|r| r.rest_first.ops > 0 && r.graphql_first.ops > 0);
        Ok((json!({ "result": result }), produced))
    }
}
