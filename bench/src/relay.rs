//! Scenario `relay`: how fast committed events reach JetStream.
//!
//! - Latency: events are committed at a steady rate by an external writer
//!   (one row per transaction, straight into the hub's `events` table, so
//!   the rate is exact and the API is not part of the figure); for each, the
//!   JetStream timestamp of the stored message minus the row's
//!   `recorded_at` is one sample.
//! - Drain: a backlog of N events is committed in one transaction while the
//!   relay is idle; the figure is N divided by the time from that commit
//!   until the stream holds all N. (The issue's "appended with NATS
//!   stopped" produces the same backlog; committing it at once needs no
//!   control over the NATS server.)

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::hub_process::HubProcess;
use crate::stats::{summarize, Summary};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Events per second for the latency run.
    pub rate: u32,
    /// How long the latency run lasts.
    pub duration: Duration,
    /// Events in the backlog.
    pub backlog: usize,
}

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct RelayResult {
    /// Target rate of the latency run.
    pub rate: u32,
    /// Commit-to-stream latency (throughput = events delivered per second).
    pub latency: Summary,
    /// Backlog size.
    pub backlog: usize,
    /// Events per second while draining the backlog.
    pub drain_per_second: f64,
}

const INSERT_ONE: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                          VALUES ('BenchLoad', $1, 1, 'BenchLoadRecorded', '1.0', $2, $3)";

const INSERT_MANY: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                           SELECT 'BenchLoad', id::text, 1, 'BenchLoadRecorded', '1.0', json_build_object('BenchLoadRecorded', json_build_object('n', n)), $2 \
                           FROM (SELECT gen_random_uuid() AS id, n FROM generate_series(1, $1) AS n) AS rows";

fn metadata() -> serde_json::Value {
    json!({"correlation_id": "bench", "causation_id": "bench", "hub_id": "bench", "service": "hub-bench", "user": "bench"})
}

/// Reads every new message of the hub's stream; returns (stream time,
/// envelope timestamp) pairs until `count` arrived or `timeout` passed.
async fn collect(
    js: &jetstream::Context,
    stream: &str,
    start_sequence: u64,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    let stream = js
        .get_stream(stream)
        .await
        .context("while opening the hub's stream")?;
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence },
            ..Default::default()
        })
        .await?;
    let mut messages = ordered.messages().await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let Ok(Some(message)) = tokio::time::timeout_at(deadline, messages.next()).await else {
            break;
        };
        let message = message?;
        let stored: DateTime<Utc> = {
            let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
            let nanos = info.published.unix_timestamp_nanos();
            DateTime::from_timestamp_nanos(nanos as i64)
        };
        let body: serde_json::Value = serde_json::from_slice(&message.payload)?;
        let recorded: DateTime<Utc> = body["timestamp"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .context("a message without a timestamp")?;
        out.push((stored, recorded));
    }
    Ok(out)
}

async fn last_sequence(js: &jetstream::Context, stream: &str) -> anyhow::Result<u64> {
    let mut stream = js.get_stream(stream).await?;
    Ok(stream.info().await?.state.last_sequence)
}

/// Runs the scenario against `hub`.
///
/// # Errors
/// When the hub's database or NATS cannot be reached.
pub async fn run(hub: &HubProcess, config: &RelayConfig) -> anyhow::Result<RelayResult> {
    let pool = PgPool::connect(&hub.database_url).await?;
    let js = jetstream::new(async_nats::connect(&hub.nats_url).await?);
    let stream = infrastructure::nats::StreamSettings::default_name(&hub.hub_id);

    // Steady rate.
    let total = (config.rate as f64 * config.duration.as_secs_f64()) as usize;
    let start = last_sequence(&js, &stream).await? + 1;
    let reader = {
        let js = js.clone();
        let stream = stream.clone();
        let timeout = config.duration + Duration::from_secs(30);
        tokio::spawn(async move { collect(&js, &stream, start, total, timeout).await })
    };
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let metadata = metadata();
    let began = Instant::now();
    for n in 0..total {
        ticker.tick().await;
        sqlx::query(INSERT_ONE)
            .bind(Uuid::new_v4().to_string())
            .bind(json!({"BenchLoadRecorded": {"n": n}}))
            .bind(&metadata)
            .execute(&pool)
            .await?;
    }
    let pairs = reader.await??;
    let elapsed = began.elapsed();
    let samples = pairs
        .iter()
        .map(|(stored, recorded)| (*stored - *recorded).to_std().unwrap_or_default())
        .collect();
    let latency = summarize(samples, total.saturating_sub(pairs.len()), elapsed);

    // Backlog.
    let start = last_sequence(&js, &stream).await? + 1;
    sqlx::query(INSERT_MANY)
        .bind(config.backlog as i64)
        .bind(&metadata)
        .execute(&pool)
        .await?;
    // The backlog becomes visible to the relay at the commit: time from there.
    let target = start + config.backlog as u64 - 1;
    let drain_started = Instant::now();
    let deadline = drain_started + Duration::from_secs(600);
    while last_sequence(&js, &stream).await? < target {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the backlog did not drain within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = drain_started.elapsed();
    pool.close().await;
    Ok(RelayResult {
        rate: config.rate,
        latency,
        backlog: config.backlog,
        drain_per_second: config.backlog as f64 / drained.as_secs_f64(),
    })
}
