//! Scenario `publish`: `POST /api/events` (integration events) at each
//! concurrency, beside a raw sqlx loop that inserts the same event row (the
//! columns and payload the hub writes for an integration event) one
//! transaction per event, at the same concurrency, in the same run.
//!
//! The raw loop runs on a database migrated with the hub's schema (so the
//! row pays the same triggers and indexes) where nothing consumes it; it
//! reads back the row's `event_id` and `recorded_at` with the insert, as the
//! hub's answer needs them. What the ratio prices is the rest of the hub's
//! path: HTTP, parsing and checking the body, the aggregate, postgres-es's
//! commit, and waiting until the event log shows the event before answering.

use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;

use crate::commands::ratio;
use crate::hub_process::HubProcess;
use crate::load::closed_loop;
use crate::stats::Summary;

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// Client counts to measure.
    pub concurrency: Vec<usize>,
    /// Events published per level, spread over the clients.
    pub events_per_level: usize,
}

/// The results at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct PublishResult {
    /// Concurrent clients.
    pub concurrency: usize,
    /// `POST /api/events`.
    pub api: Summary,
    /// The same row inserted raw, one transaction each.
    pub raw: Summary,
    /// API throughput / raw throughput.
    pub ratio: f64,
}

/// The integration event's row as the hub writes it (see
/// `infrastructure::integration`).
const INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
     VALUES ('IntegrationEvent', $1, 1, 'IntegrationEventPublished', '1.0', $2, $3) \
     RETURNING event_id, recorded_at";

/// The subject the bench publishes on.
fn subject(hub_id: &str) -> String {
    format!("hub.{hub_id}.bench.publish.done")
}

/// One event's body: what a client sends, and what the store keeps inside
/// the event.
fn body(client: usize, i: usize) -> Value {
    json!({ "client": client, "i": i, "status": "done" })
}

async fn raw_publish(pool: &PgPool, hub_id: &str, client: usize, i: usize) -> sqlx::Result<()> {
    let payload = json!({ "IntegrationEventPublished": { "subject": subject(hub_id), "payload": body(client, i) } });
    let metadata = json!({
        "correlation_id": Uuid::new_v4().to_string(), "causation_id": Uuid::new_v4().to_string(),
        "hub_id": hub_id, "service": "hub-api", "user": "anonymous",
    });
    let mut tx = pool.begin().await?;
    let _recorded: (Uuid, chrono::DateTime<chrono::Utc>) = sqlx::query_as(INSERT)
        .bind(Uuid::new_v4().to_string())
        .bind(&payload)
        .bind(&metadata)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await
}

/// Runs the scenario against `hub`, with the raw loop on `raw_database_url`.
///
/// # Errors
/// When the hub or the raw database cannot be reached.
pub async fn run(
    hub: &HubProcess,
    raw_database_url: &str,
    config: &PublishConfig,
) -> anyhow::Result<Vec<PublishResult>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let url = Arc::new(format!("{}/api/events", hub.url));
    let hub_id: Arc<str> = hub.hub_id.as_str().into();
    let mut results = Vec::new();
    for &clients in &config.concurrency {
        let per_client = (config.events_per_level / clients).max(1);
        let (client, url, hub_id) = (client.clone(), url.clone(), hub_id.clone());
        let api = closed_loop(clients, per_client, move |c, i| {
            let (client, url) = (client.clone(), url.clone());
            let request = json!({ "subject": subject(&hub_id), "payload": body(c, i) });
            async move {
                let response = client.post(url.as_str()).json(&request).send().await?;
                response.error_for_status().map(drop)
            }
        })
        .await;
        let pool = PgPoolOptions::new()
            // The same cap as the hub's pool (HUB_DB_MAX_CONNECTIONS=32).
            .max_connections(clients.min(32) as u32)
            .connect(raw_database_url)
            .await
            .context("while connecting the raw loop")?;
        let (raw_pool, hub_id) = (pool.clone(), hub.hub_id.clone());
        let raw = closed_loop(clients, per_client, move |c, i| {
            let (pool, hub_id) = (raw_pool.clone(), hub_id.clone());
            async move { raw_publish(&pool, &hub_id, c, i).await }
        })
        .await;
        pool.close().await;
        results.push(PublishResult {
            concurrency: clients,
            ratio: ratio(&api, &raw),
            api,
            raw,
        });
    }
    Ok(results)
}
