//! Scenario `subscriptions`: N WebSocket clients subscribed to
//! `projectChanged` (graphql-transport-ws) while mutations arrive at a steady
//! rate; delivery latency is the time a client receives a change minus the
//! change's `updatedAt` (the event's `recorded_at`), over every client.
//!
//! The clients share the machine with the hub, so each is kept cheap: it
//! reads only the fields it needs from each message (no JSON tree) and
//! keeps its samples to itself (no lock shared by all of them).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::commands::graphql;
use crate::hub_process::HubProcess;
use crate::stats::{summarize, Summary};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct SubscriptionsConfig {
    /// Connected subscribers.
    pub subscribers: usize,
    /// Mutations per second.
    pub rate: u32,
    /// How long mutations run.
    pub duration: Duration,
}

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionsResult {
    /// Connected subscribers.
    pub subscribers: usize,
    /// Mutations made.
    pub mutations: usize,
    /// Delivery latency over all deliveries (throughput = deliveries/s).
    pub delivery: Summary,
}

/// What every client reports into.
#[derive(Default)]
struct Tally {
    /// Set once every client is live: deliveries count from then on.
    measuring: AtomicBool,
    /// Deliveries counted so far, over all clients.
    delivered: AtomicUsize,
}

/// One client's delivery latencies.
type Samples = Arc<Mutex<Vec<Duration>>>;

/// The parts of a server message the client reads.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    payload: Option<Payload<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "projectChanged", borrow)]
    project_changed: Option<Changed<'a>>,
}

#[derive(Deserialize)]
struct Changed<'a> {
    #[serde(rename = "updatedAt", borrow)]
    updated_at: Cow<'a, str>,
}

async fn subscriber(
    url: String,
    samples: Samples,
    tally: Arc<Tally>,
    warm: Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<()> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    // A small read buffer: tungstenite zero-fills it before every read, and
    // at its 128 KiB default that memset would make the 1,000 clients (which
    // share the machine with the hub) a large part of what is measured.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), false).await?;
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": {}}).to_string(),
        ))
        .await?;
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { projectChanged { updatedAt } }"}})
                .to_string(),
        ))
        .await?;
    let mut warmed = false;
    while let Some(message) = socket.next().await {
        let received = Utc::now();
        let Message::Text(text) = message? else {
            continue;
        };
        let body: Incoming<'_> = serde_json::from_str(&text)?;
        match &*body.kind {
            "next" => {
                if !warmed {
                    warmed = true;
                    warm.add_permits(1);
                    continue;
                }
                if !tally.measuring.load(Ordering::Relaxed) {
                    continue;
                }
                // RFC 3339's own parser: chrono's generic `FromStr` took
                // more of the clients' CPU than reading the message did.
                let updated = body
                    .payload
                    .and_then(|payload| payload.data)
                    .and_then(|data| data.project_changed)
                    .and_then(|changed| DateTime::parse_from_rfc3339(&changed.updated_at).ok())
                    .map(|updated| updated.with_timezone(&Utc));
                if let Some(updated) = updated {
                    samples
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push((received - updated).to_std().unwrap_or_default());
                    tally.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            "ping" => {
                socket
                    .send(Message::text(json!({"type": "pong"}).to_string()))
                    .await?
            }
            "error" | "complete" => bail!("subscription ended: {text}"),
            _ => {}
        }
    }
    Ok(())
}

/// Runs the scenario against `hub`.
///
/// # Errors
/// When sockets cannot be opened or mutations fail.
pub async fn run(
    hub: &HubProcess,
    config: &SubscriptionsConfig,
) -> anyhow::Result<SubscriptionsResult> {
    let client = reqwest::Client::new();
    let created = graphql(
        &client,
        &hub.url,
        "mutation { createProject(input: {name: \"subscribed\", path: \"/srv/subscribed\"}) { project { id } } }",
        json!({}),
    )
    .await?;
    let id = created["data"]["createProject"]["project"]["id"]
        .as_str()
        .context("no project id")?
        .to_owned();
    let ws_url = format!("{}/graphql/ws", hub.url.replacen("http", "ws", 1));
    let tally = Arc::new(Tally::default());
    let warm = Arc::new(tokio::sync::Semaphore::new(0));
    let mut sockets = Vec::with_capacity(config.subscribers);
    let mut samples = Vec::with_capacity(config.subscribers);
    for _ in 0..config.subscribers {
        let mine = Samples::default();
        samples.push(mine.clone());
        sockets.push(tokio::spawn(subscriber(
            ws_url.clone(),
            mine,
            tally.clone(),
            warm.clone(),
        )));
    }
    // Warm-up: change the project until every subscriber has seen a change
    // (the server does not confirm that a subscription is live).
    let toggle = ["startProject", "stopProject"];
    let mut flips = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while warm.available_permits() < config.subscribers {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} subscribers became live",
                warm.available_permits(),
                config.subscribers
            );
        }
        let op = toggle[flips % 2];
        if graphql(
            &client,
            &hub.url,
            &format!("mutation($id: ID!) {{ {op}(id: $id) {{ project {{ version }} }} }}"),
            json!({ "id": id }),
        )
        .await
        .is_ok()
        {
            flips += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tally.measuring.store(true, Ordering::Relaxed);
    let total = (f64::from(config.rate) * config.duration.as_secs_f64()) as usize;
    let mut ticker =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(config.rate.max(1))));
    let began = Instant::now();
    let mut made = 0;
    for _ in 0..total {
        ticker.tick().await;
        let op = toggle[flips % 2];
        // Each accepted command changes the project twice (requested, then
        // completed by the orchestrator); one still in progress is refused
        // with INVALID_TRANSITION and tried again at the next tick.
        match graphql(
            &client,
            &hub.url,
            &format!("mutation($id: ID!) {{ {op}(id: $id) {{ project {{ version }} }} }}"),
            json!({ "id": id }),
        )
        .await
        {
            Ok(_) => {
                flips += 1;
                made += 1;
            }
            Err(err) if err.to_string().contains("INVALID_TRANSITION") => {}
            Err(err) => return Err(err),
        }
    }
    // Let the last changes arrive: wait until every subscriber has every
    // change (two per accepted command), or 10 s.
    let expected = 2 * made * config.subscribers;
    let settle = Instant::now() + Duration::from_secs(10);
    while tally.delivered.load(Ordering::Relaxed) < expected && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = began.elapsed();
    for socket in sockets {
        socket.abort();
    }
    let collected: Vec<Duration> = samples
        .iter()
        .flat_map(|mine| std::mem::take(&mut *mine.lock().unwrap_or_else(|p| p.into_inner())))
        .collect();
    let missing = expected.saturating_sub(collected.len());
    Ok(SubscriptionsResult {
        subscribers: config.subscribers,
        mutations: made,
        delivery: summarize(collected, missing, elapsed),
    })
}
