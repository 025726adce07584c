//! Scenario `queries`: filtered pages of a large event log, right after
//! `hub projections rebuild event_log` switched over and at steady state.
//!
//! The store is seeded with SQL the way the hub stores integration events
//! (an `IntegrationEvent` aggregate per event): five domains times three
//! actions as subjects, and a retired one (one event in ten of the log's
//! first half, none after: its deep page, after the middle of the log,
//! shows whether a page walks the rest of the log, for the subject and for
//! a pattern of its domain), a number of correlation ids, and a timestamp
//! one millisecond apart each. The other consumers are moved past the seed (the
//! relay would otherwise publish it all to NATS), `event_log` is built by
//! the rebuild command, and then a hub serves it. Each query is sent
//! `samples` times, one at a time, over REST (`GET /api/events`: the first
//! page, and a deep page after a cursor in the middle of the log) and over
//! GraphQL (`events`: the first page and the second, after its cursor),
//! once straight after the rebuild and once after an `ANALYZE` of its own.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use infrastructure::feed::FeedPosition;
use projections::cursor::encode_event_cursor;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::database::BenchDatabase;
use crate::hub_process::HubProcess;
use crate::stats::{summarize, Summary};

mod seed;

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct QueriesConfig {
    /// Integration events in the store.
    pub events: i64,
    /// Distinct correlation ids among them.
    pub correlations: i64,
    /// Times each query is sent per phase.
    pub samples: usize,
}

/// Events per page, as the figures are taken.
const PAGE: u32 = 100;

/// One filter's latencies in one phase.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRow {
    /// `after rebuild` or `steady`.
    pub phase: &'static str,
    /// Which filter.
    pub filter: &'static str,
    /// Events on the deep page (up to a page).
    pub deep_events: usize,
    /// Events on the GraphQL second page (up to a page).
    pub second_events: usize,
    /// REST, first page.
    pub rest_first: Summary,
    /// REST, a page after a cursor in the middle of the log.
    pub rest_deep: Summary,
    /// GraphQL, first page.
    pub graphql_first: Summary,
    /// GraphQL, second page.
    pub graphql_second: Summary,
}

/// The whole scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct QueriesResult {
    /// Events in the store.
    pub events: i64,
    /// Seconds the SQL seed took.
    pub seed_seconds: f64,
    /// Seconds `hub projections rebuild event_log` took.
    pub rebuild_seconds: f64,
    /// Every filter in each phase.
    pub rows: Vec<QueryRow>,
}

/// A filter kind: its name, its REST parameters, its GraphQL `EventFilter`.
struct Filter {
    name: &'static str,
    rest: Vec<(&'static str, String)>,
    graphql: Value,
}

fn filters(hub_id: &str, correlation: &str, middle: DateTime<Utc>) -> Vec<Filter> {
    let subject = |name, pattern: String| Filter {
        name,
        rest: vec![("subject", pattern.clone())],
        graphql: json!({ "subject": pattern }),
    };
    let since = middle.to_rfc3339_opts(SecondsFormat::Millis, true);
    let start = (middle - chrono::Duration::days(1)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let retired = format!("hub.{hub_id}.{}.*", seed::RETIRED_DOMAIN);
    vec![
        subject("exact subject", format!("hub.{hub_id}.deploy.failed")),
        subject("retired subject", format!("hub.{hub_id}.{}", seed::RETIRED)),
        subject("retired pattern", retired.clone()),
        subject("hub.<id>.*.failed", format!("hub.{hub_id}.*.failed")),
        subject("hub.<id>.deploy.>", format!("hub.{hub_id}.deploy.>")),
        Filter {
            name: "correlation id",
            rest: vec![("correlation_id", correlation.to_owned())],
            graphql: json!({ "correlationId": correlation }),
        },
        Filter {
            name: "since",
            rest: vec![("since", since.clone())],
            graphql: json!({ "since": since }),
        },
        // No index of their own: their pages stop at the scan of the log.
        Filter {
            name: "retired pattern, since",
            rest: vec![("subject", retired.clone()), ("since", start.clone())],
            graphql: json!({ "subject": retired, "since": start }),
        },
        Filter {
            name: "until",
            rest: vec![("until", since.clone())],
            graphql: json!({ "until": since }),
        },
    ]
}

const GRAPHQL: &str = "query($f: EventFilter, $first: Int, $after: String) { \
     events(filter: $f, first: $first, after: $after) { \
       nodes { id cursor subject eventType correlationId timestamp payload } \
       pageInfo { endCursor hasNextPage } } }";

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    /// A REST page: the number of events in it.
    async fn rest(&self, filter: &Filter, after: Option<&str>) -> anyhow::Result<usize> {
        let mut query = filter.rest.clone();
        query.push(("limit", PAGE.to_string()));
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let events: Vec<Value> = self
            .http
            .get(format!("{}/api/events", self.url))
            .query(&query)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(events.len())
    }

    /// A GraphQL page: its events and the cursor after it.
    async fn graphql(
        &self,
        filter: &Filter,
        after: Option<&str>,
    ) -> anyhow::Result<(usize, Option<String>)> {
        let variables = json!({ "f": filter.graphql, "first": PAGE, "after": after });
        let body = crate::commands::graphql(&self.http, &self.url, GRAPHQL, variables).await?;
        let events = &body["data"]["events"];
        let count = events["nodes"].as_array().map_or(0, Vec::len);
        Ok((
            count,
            events["pageInfo"]["endCursor"].as_str().map(str::to_owned),
        ))
    }
}

/// Sends one page `samples` times; only failed requests are errors.
async fn sample<F, Fut, T>(samples: usize, page: F) -> Summary
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let (mut times, mut errors) = (Vec::with_capacity(samples), 0);
    let started = Instant::now();
    for _ in 0..samples {
        let t = Instant::now();
        match page().await {
            Ok(_) => times.push(t.elapsed()),
            Err(_) => errors += 1,
        }
    }
    summarize(times, errors, started.elapsed())
}

async fn phase(
    client: &Client,
    phase: &'static str,
    filters: &[Filter],
    deep: &str,
    samples: usize,
) -> anyhow::Result<Vec<QueryRow>> {
    let mut rows = Vec::new();
    for filter in filters {
        // Pages a filter can fill (a correlation id has only a few events:
        // its second page is empty) are counted, so the figures can be read.
        let (first_events, second) = client.graphql(filter, None).await?;
        if first_events == 0 {
            bail!("{}: the first page is empty", filter.name);
        }
        let second =
            second.with_context(|| format!("{}: no cursor after the first page", filter.name))?;
        rows.push(QueryRow {
            phase,
            filter: filter.name,
            deep_events: client.rest(filter, Some(deep)).await?,
            second_events: client.graphql(filter, Some(&second)).await?.0,
            rest_first: sample(samples, || client.rest(filter, None)).await,
            rest_deep: sample(samples, || client.rest(filter, Some(deep))).await,
            graphql_first: sample(samples, || client.graphql(filter, None)).await,
            graphql_second: sample(samples, || client.graphql(filter, Some(&second))).await,
        });
    }
    Ok(rows)
}

/// The cursor of the event in the middle of the log, and its timestamp.
async fn middle(conn: &mut PgConnection, events: i64) -> anyhow::Result<(String, DateTime<Utc>)> {
    let (transaction_id, position, at): (String, i64, DateTime<Utc>) = sqlx::query_as(
        "SELECT transaction_id::text, position, recorded_at FROM events WHERE position = $1",
    )
    .bind(events / 2)
    .fetch_one(conn)
    .await
    .context("while finding the middle of the log")?;
    let cursor = encode_event_cursor(FeedPosition {
        transaction_id: transaction_id.parse()?,
        position,
    });
    Ok((cursor, at))
}

/// Seeds a store, rebuilds `event_log`, serves it with a hub and measures.
///
/// # Errors
/// When the store cannot be prepared, the rebuild or the hub fails, or a
/// filter has no second page.
pub async fn run(
    binary: &Path,
    admin_url: &str,
    nats_url: &str,
    config: &QueriesConfig,
) -> anyhow::Result<QueriesResult> {
    let hub_id = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let database = BenchDatabase::migrated(admin_url, "hub_bench_queries", binary).await?;
    let prepared = async {
        let began = Instant::now();
        seed::seed(&database.url, &hub_id, config).await?;
        let seed_seconds = began.elapsed().as_secs_f64();
        let began = Instant::now();
        let rebuild = ["projections", "rebuild", "event_log"];
        crate::rebuild::hub(binary, &database.url, Some(&hub_id), &rebuild).await?;
        anyhow::Ok((seed_seconds, began.elapsed().as_secs_f64()))
    }
    .await;
    let (seed_seconds, rebuild_seconds) = match prepared {
        Ok(times) => times,
        Err(err) => {
            database.drop_database().await;
            return Err(err);
        }
    };
    let hub = HubProcess::start_on(binary, database, &hub_id, nats_url).await?;
    let outcome = measure(&hub, config).await;
    hub.shutdown().await;
    Ok(QueriesResult {
        events: config.events,
        seed_seconds,
        rebuild_seconds,
        rows: outcome?,
    })
}

async fn measure(hub: &HubProcess, config: &QueriesConfig) -> anyhow::Result<Vec<QueryRow>> {
    let mut conn = PgConnection::connect(&hub.database_url).await?;
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
        .fetch_one(&mut conn)
        .await?;
    if logged < config.events {
        bail!(
            "the rebuilt event log holds {logged} of {} events",
            config.events
        );
    }
    let (deep, at) = middle(&mut conn, config.events).await?;
    let correlation = seed::correlation(config.correlations / 3);
    let filters = filters(&hub.hub_id, &correlation, at);
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        url: hub.url.clone(),
    };
    let mut rows = phase(&client, "after rebuild", &filters, &deep, config.samples).await?;
    sqlx::query("ANALYZE event_log").execute(&mut conn).await?;
    rows.extend(phase(&client, "steady", &filters, &deep, config.samples).await?);
    Ok(rows)
}
