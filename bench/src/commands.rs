//! Scenario `commands`: createProject and start/stop cycles through GraphQL
//! over HTTP, beside a raw sqlx loop doing the same store work, at the same
//! concurrency, in the same run; with the `framework` scenario, the same
//! creates through plain cqrs-es too, in turns with the hub's at each level
//! (see the `framework` module).
//!
//! With orchestration, `startProject` answers STARTING and the process
//! manager completes it; a cycle's next command waits (retrying) until the
//! previous one completed, and only accepted commands are counted.
//!
//! The raw loop runs on a second database migrated with the hub's schema
//! (`hub migrate`) where nothing consumes the events, and does what the
//! store does per command: read the aggregate's events, then insert the new
//! event row in a transaction. Creates insert a non-`Project` aggregate type
//! so the reservation trigger does not run (its cost is part of what the API
//! pays and the ratio shows).
//!
//! A start or stop through the API is two commands and three bookkeeping
//! commits: the request (load, insert), the process manager recording it in
//! `orchestration_requests` (insert) and marking the attempt (update), the
//! completion (load, insert), and the request marked finished (update). The
//! raw cycle does exactly those five transactions, one after the other, per
//! start or stop; what it leaves out (HTTP, GraphQL, the feed reads, the
//! read models, the relay) is what the ratio prices.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::framework::Framework;
use crate::hub_process::HubProcess;
use crate::load::{gather, sampled_loop, Sampled};
use crate::raw;
use crate::stats::{summarize, Summary};

/// First wait before retrying a start or stop the orchestrator is not
/// ready for; it doubles up to [`RETRY_LONGEST`].
const RETRY_FIRST: Duration = Duration::from_millis(1);
/// Longest wait between two such retries.
const RETRY_LONGEST: Duration = Duration::from_millis(8);
/// Turns the hub's and the framework baseline's creates take per level.
const ROUNDS: usize = 3;
/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct CommandsConfig {
    /// Client counts to measure.
    pub concurrency: Vec<usize>,
    /// createProject calls per level, spread over the clients.
    pub creates_per_level: usize,
    /// How long start/stop cycles run per level; `None`: no cycles (only
    /// the creates, when the `framework` scenario runs without `commands`).
    pub cycle_duration: Option<Duration>,
}

/// The results at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct CommandsResult {
    /// Concurrent clients.
    pub concurrency: usize,
    /// createProject through the API.
    pub create_api: Summary,
    /// The same store work, raw.
    pub create_raw: Summary,
    /// API throughput / raw throughput.
    pub create_ratio: f64,
    /// The same command through plain cqrs-es (scenario `framework`).
    pub create_framework: Option<Summary>,
    /// API throughput / framework throughput.
    pub create_framework_ratio: Option<f64>,
    /// Events per committed batch of each feed consumer during the API
    /// creates (from the hub's `/metrics`): the bigger, the cheaper each
    /// event is to project, publish and checkpoint.
    pub create_batch_sizes: BTreeMap<String, f64>,
    /// start/stop through the API, raw, and the ratio, when cycles ran.
    pub cycles: Option<Cycles>,
}

/// start/stop cycles at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Cycles {
    /// Through the API.
    pub api: Summary,
    /// The same store work, raw.
    pub raw: Summary,
    /// API throughput / raw throughput.
    pub ratio: f64,
}

/// POSTs a GraphQL operation to the hub at `url`; GraphQL errors are errors.
///
/// # Errors
/// When the request fails or the answer carries errors.
pub async fn graphql(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let body: Value = client
        .post(format!("{url}/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?;
    if !body["errors"].is_null() {
        bail!("GraphQL error: {}", body["errors"]);
    }
    Ok(body)
}

struct Api {
    client: reqwest::Client,
    url: String,
}

impl Api {
    async fn call(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        graphql(&self.client, &self.url, query, variables).await
    }

    async fn create(&self, name: &str) -> anyhow::Result<String> {
        let body = self
            .call(
                "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }",
                json!({ "i": { "name": name, "path": format!("/srv/bench/{name}") } }),
            )
            .await?;
        body["data"]["createProject"]["project"]["id"]
            .as_str()
            .map(str::to_owned)
            .context("createProject returned no id")
    }

    async fn toggle(&self, id: &str, start: bool) -> anyhow::Result<()> {
        let mutation = if start { "startProject" } else { "stopProject" };
        self.call(
            &format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ project {{ version }} }} }}"),
            json!({ "id": id }),
        )
        .await
        .map(drop)
    }
}

async fn api_creates(api: &Arc<Api>, clients: usize, per_client: usize) -> Sampled {
    let run = Uuid::new_v4().simple().to_string();
    let api = api.clone();
    sampled_loop(clients, per_client, move |c, i| {
        let api = api.clone();
        let name = format!("bench {run} {c} {i}");
        async move { api.create(&name).await }
    })
    .await
}

async fn api_cycles(api: &Arc<Api>, clients: usize, duration: Duration) -> anyhow::Result<Summary> {
    let run = Uuid::new_v4().simple().to_string();
    let mut ids = Vec::new();
    for c in 0..clients {
        ids.push(api.create(&format!("cycle {run} {c}")).await?);
    }
    let started = Instant::now();
    let tasks = ids
        .into_iter()
        .map(|id| {
            let api = api.clone();
            tokio::spawn(async move {
                let (mut samples, mut errors, mut start) = (Vec::new(), 0, true);
                let mut wait = RETRY_FIRST;
                while started.elapsed() < duration {
                    let t = Instant::now();
                    match api.toggle(&id, start).await {
                        Ok(()) => {
                            samples.push(t.elapsed());
                            start = !start;
                            wait = RETRY_FIRST;
                        }
                        // The orchestrator has not finished the previous
                        // start or stop yet: try again (not a failure), a
                        // little later each time, so that the retries do
                        // not take the CPU the orchestrator needs.
                        Err(err) if err.to_string().contains("INVALID_TRANSITION") => {
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(RETRY_LONGEST);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (samples, errors)
            })
        })
        .collect();
    let (samples, errors) = gather(tasks).await;
    Ok(summarize(samples, errors, started.elapsed()))
}

/// Per feed consumer: (events handled, batches committed), from the hub's
/// `/metrics`; empty when they cannot be read.
async fn feed_counters(api: &Api) -> BTreeMap<String, (f64, f64)> {
    let Ok(response) = api.client.get(format!("{}/metrics", api.url)).send().await else {
        return BTreeMap::new();
    };
    parse_feed_counters(&response.text().await.unwrap_or_default())
}

fn parse_feed_counters(text: &str) -> BTreeMap<String, (f64, f64)> {
    let mut counters: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        for (metric, batches) in [
            ("hub_feed_handled_events", false),
            ("hub_feed_batches", true),
        ] {
            let Some(rest) = line
                .strip_prefix(metric)
                .and_then(|r| r.strip_prefix("{consumer=\""))
            else {
                continue;
            };
            let Some((consumer, value)) = rest.split_once("\"} ") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let entry = counters.entry(consumer.to_owned()).or_default();
            if batches {
                entry.1 = value;
            } else {
                entry.0 = value;
            }
        }
    }
    counters
}

/// Events per batch between two [`feed_counters`] readings.
fn batch_sizes(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(consumer, (events, batches))| {
            let (events_before, batches_before) = before.get(consumer).copied().unwrap_or_default();
            let batches = batches - batches_before;
            (batches > 0.0).then(|| (consumer.clone(), (events - events_before) / batches))
        })
        .collect()
}

/// Runs the scenario against `hub`, with the raw loop on `raw_database_url`
/// and, when given, the framework baseline's creates after the hub's.
///
/// # Errors
/// When the hub, the raw database or the baseline cannot be reached.
pub async fn run(
    hub: &HubProcess,
    raw_database_url: &str,
    framework: Option<&Framework>,
    config: &CommandsConfig,
) -> anyhow::Result<Vec<CommandsResult>> {
    let api = Arc::new(Api {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?,
        url: hub.url.clone(),
    });
    let mut results = Vec::new();
    for &clients in &config.concurrency {
        let pool = PgPoolOptions::new()
            // The same cap as the hub's pool (HUB_DB_MAX_CONNECTIONS=32).
            .max_connections(clients.min(32) as u32)
            .connect(raw_database_url)
            .await
            .context("while connecting the raw loop")?;
        let per_client = (config.creates_per_level / clients).max(1);
        // With the baseline, the hub's and the framework's creates take
        // turns, so that neither has the quieter moments of the machine.
        let rounds = if framework.is_some() { ROUNDS } else { 1 };
        let per_round = (per_client / rounds).max(1);
        let (mut create_api, mut create_framework) = (Sampled::default(), Sampled::default());
        let before = feed_counters(&api).await;
        for _ in 0..rounds {
            create_api.merge(api_creates(&api, clients, per_round).await);
            if let Some(framework) = framework {
                create_framework.merge(framework.creates(&api.client, clients, per_round).await?);
            }
        }
        let create_batch_sizes = batch_sizes(&before, &feed_counters(&api).await);
        let create_api = create_api.summary();
        let create_framework = framework.map(|_| create_framework.summary());
        let create_raw = raw::creates(&pool, clients, per_client).await;
        let cycles = match config.cycle_duration {
            Some(duration) => {
                let api = api_cycles(&api, clients, duration).await?;
                let raw = raw::cycles(&pool, clients, duration).await;
                Some(Cycles {
                    ratio: ratio(&api, &raw),
                    api,
                    raw,
                })
            }
            None => None,
        };
        results.push(CommandsResult {
            concurrency: clients,
            create_ratio: ratio(&create_api, &create_raw),
            create_framework_ratio: create_framework.as_ref().map(|f| ratio(&create_api, f)),
            create_framework,
            create_batch_sizes,
            create_api,
            create_raw,
            cycles,
        });
        pool.close().await;
    }
    Ok(results)
}

/// Throughput of `a` over throughput of `b`.
pub(crate) fn ratio(a: &Summary, b: &Summary) -> f64 {
    a.throughput / b.throughput.max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_come_from_the_metrics_text() {
        let before = parse_feed_counters(
            "# HELP hub_feed_batches x\nhub_feed_batches{consumer=\"projects\"} 10\n\
             hub_feed_handled_events{consumer=\"projects\"} 10\n\
             hub_feed_handled_events{consumer=\"nats_relay\"} 10\n",
        );
        let after = parse_feed_counters(
            "hub_feed_batches{consumer=\"projects\"} 30\n\
             hub_feed_handled_events{consumer=\"projects\"} 90\n\
             hub_feed_batches{consumer=\"nats_relay\"} 0\n\
             hub_feed_handled_events{consumer=\"nats_relay\"} 90\n",
        );
        let sizes = batch_sizes(&before, &after);
        assert_eq!(sizes.get("projects"), Some(&4.0));
        assert_eq!(sizes.get("nats_relay"), None, "no batch: no size");
    }
}
