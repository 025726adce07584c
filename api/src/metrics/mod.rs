//! Prometheus metrics: `GET /metrics` in the text exposition format.
//!
//! Counted as things happen: commands (by type and outcome, with latency),
//! events appended by this process, HTTP requests (by route and status),
//! SSE event streams that fell behind the live feed and caught up.
//! Read at scrape time: each feed consumer's lag and state (the NATS relay
//! is one of them), open live subscriptions, connections and WebSockets,
//! NATS and database reachability.
//! Each [`Metrics`] has its own registry, so several hubs in one process
//! (tests) do not mix their numbers.
//!
//! Layout: this file holds the registry, what is counted as it happens and
//! the module's [`router`]; `http` the middleware that counts requests;
//! `scrape` the `GET /metrics` endpoint, which reads the scrape-time gauges.

mod http;
pub mod scrape;

pub use http::track_http;
pub use scrape::scrape;

use std::future::Future;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use cqrs_es::Aggregate as _;
use domain::Project;
use infrastructure::{CommandError, Executed};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::state::AppState;

/// `GET /metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// How a command ended, as the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (events recorded, or a no-op).
    Ok,
    /// Refused by the domain or as invalid input.
    Rejected,
    /// A stale expected version or a lost race.
    Conflict,
    /// A dependency was down.
    Unavailable,
    /// A bug.
    Internal,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Rejected => "rejected",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The outcome of a command bus call.
    pub fn of(result: &Result<Executed, CommandError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(CommandError::Rejected(_)) => Self::Rejected,
            Err(CommandError::Conflict { .. }) => Self::Conflict,
            Err(CommandError::Unavailable(_)) => Self::Unavailable,
            Err(CommandError::Internal(_)) => Self::Internal,
        }
    }
}

/// The hub's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    commands: IntCounterVec,
    command_seconds: HistogramVec,
    events_appended: IntCounterVec,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    sse_catch_ups: IntCounter,
    subscription_catch_ups: IntCounter,
    feed_lag: IntGaugeVec,
    feed_handled: IntGaugeVec,
    feed_batches: IntGaugeVec,
    feed_parked: IntGaugeVec,
    feed_active: IntGaugeVec,
    feed_failures: IntGaugeVec,
    relay_lag: IntGauge,
    feed_wait: Gauge,
    subscriptions: IntGauge,
    subscription_groups: IntGauge,
    subscription_runs: IntGauge,
    connections: IntGauge,
    sockets: IntGauge,
    nats_connected: IntGauge,
    database_up: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once, under its own name");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric options");
    register(registry, metric)
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let metric =
        HistogramVec::new(HistogramOpts::new(name, help), labels).expect("valid metric options");
    register(registry, metric)
}

fn gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric options");
    register(registry, metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        registry,
        IntGauge::new(name, help).expect("valid metric options"),
    )
}

impl Metrics {
    /// Every metric at zero, in a registry of its own.
    pub fn new() -> Self {
        let r = Registry::new();
        Self {
            commands: counter(
                &r,
                "hub_commands_total",
                "Commands executed, by command type and outcome.",
                &["command", "outcome"],
            ),
            command_seconds: histogram(
                &r,
                "hub_command_duration_seconds",
                "Time to decide and commit a command, by command type and outcome.",
                &["command", "outcome"],
            ),
            events_appended: counter(
                &r,
                "hub_events_appended_total",
                "Events this process appended to the store, by aggregate type.",
                &["aggregate_type"],
            ),
            http_requests: counter(
                &r,
                "hub_http_requests_total",
                "HTTP requests answered, by method, route and status.",
                &["method", "route", "status"],
            ),
            http_seconds: histogram(
                &r,
                "hub_http_request_duration_seconds",
                "Time to answer an HTTP request, by method and route.",
                &["method", "route"],
            ),
            feed_lag: gauges(
                &r,
                "hub_feed_lag_events",
                "Committed events a feed consumer (read model or relay) has not handled yet.",
                &["consumer"],
            ),
            feed_handled: gauges(
                &r,
                "hub_feed_handled_events",
                "Events a feed consumer has handled in total.",
                &["consumer"],
            ),
            feed_batches: gauges(
                &r,
                "hub_feed_batches",
                "Batches a feed consumer has committed in this process (handled / batches is its batch size).",
                &["consumer"],
            ),
            feed_parked: gauges(
                &r,
                "hub_feed_parked_events",
                "Events a feed consumer parked because it kept failing on them.",
                &["consumer"],
            ),
            feed_active: gauges(
                &r,
                "hub_feed_active",
                "1 when this process runs the feed consumer, 0 when it stands by.",
                &["consumer"],
            ),
            feed_failures: gauges(
                &r,
                "hub_feed_consecutive_failures",
                "Failures in a row of a feed consumer (0 when healthy).",
                &["consumer"],
            ),
            relay_lag: gauge(
                &r,
                "hub_relay_lag_events",
                "Committed events not yet published to NATS.",
            ),
            feed_wait: register(
                &r,
                Gauge::new(
                    "hub_feed_wait_seconds",
                    "How long the oldest open transaction that appends events has been open: \
                     the feed waits for it (0 when there is none).",
                )
                .expect("valid metric options"),
            ),
            subscriptions: gauge(
                &r,
                "hub_subscriptions_open",
                "Live subscriptions open in this process (GraphQL, event socket and SSE).",
            ),
            subscription_groups: gauge(
                &r,
                "hub_subscription_groups",
                "Distinct GraphQL subscriptions (document, variables, access) open; the subscribers of one share a stream.",
            ),
            subscription_runs: gauge(
                &r,
                "hub_subscription_runs",
                "GraphQL operations running for sockets: one per shared stream, plus each subscriber's own run until it takes the shared stream over.",
            ),
            connections: gauge(
                &r,
                "hub_http_connections_open",
                "HTTP connections open, WebSockets included (at most HUB_MAX_CONNECTIONS).",
            ),
            sockets: gauge(
                &r,
                "hub_websockets_open",
                "WebSockets open (GraphQL and event socket; at most three quarters of the connections).",
            ),
            nats_connected: gauge(
                &r,
                "hub_nats_connected",
                "1 when the NATS connection is up.",
            ),
            database_up: gauge(
                &r,
                "hub_database_up",
                "1 when the database answered the last scrape.",
            ),
            subscription_catch_ups: register(
                &r,
                IntCounter::new(
                    "hub_subscription_catch_ups_total",
                    "Times a GraphQL project subscription fell behind the live feed or its shared stream and caught up from the store.",
                )
                .expect("valid metric options"),
            ),
            sse_catch_ups: register(
                &r,
                IntCounter::new(
                    "hub_sse_catch_ups_total",
                    "Times an SSE event stream fell behind the live feed and caught up from the store.",
                )
                .expect("valid metric options"),
            ),
            registry: r,
        }
    }

    /// Runs a command bus call, recording its type, outcome, latency and
    /// the events it appended.
    pub async fn time_command(
        &self,
        command: &'static str,
        call: impl Future<Output = Result<Executed, CommandError>>,
    ) -> Result<Executed, CommandError> {
        let started = Instant::now();
        let result = call.await;
        self.observe_command(command, Outcome::of(&result), started.elapsed());
        if let Ok(executed) = &result {
            self.appended(Project::TYPE, executed.events);
        }
        result
    }

    /// Records one command of type `command`.
    pub fn observe_command(&self, command: &str, outcome: Outcome, took: Duration) {
        let labels = [command, outcome.as_str()];
        self.commands.with_label_values(&labels).inc();
        self.command_seconds
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
    }

    /// Records `count` events appended for `aggregate_type`.
    pub fn appended(&self, aggregate_type: &str, count: usize) {
        if count > 0 {
            self.events_appended
                .with_label_values(&[aggregate_type])
                .inc_by(count as u64);
        }
    }

    /// Records an SSE event stream that fell behind the live feed and went
    /// back to the store.
    pub fn sse_caught_up(&self) {
        self.sse_catch_ups.inc();
    }

    /// Records a GraphQL project subscription that fell behind the live
    /// feed or its shared stream and went back to the store.
    pub fn subscription_caught_up(&self) {
        self.subscription_catch_ups.inc();
    }

    fn observe_http(&self, method: &str, route: &str, status: StatusCode, took: Duration) {
        self.http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.http_seconds
            .with_label_values(&[method, route])
            .observe(took.as_secs_f64());
    }

    /// The registry in the text exposition format.
    fn encode(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|err| prometheus::Error::Msg(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.observe_command("StartProject", Outcome::Rejected, Duration::from_millis(3));
        metrics.appended(Project::TYPE, 2);
        metrics.appended(Project::TYPE, 0);
        metrics.observe_http("GET", "/health", StatusCode::OK, Duration::from_millis(1));
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("hub_commands_total{command=\"StartProject\",outcome=\"rejected\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "hub_command_duration_seconds_count{command=\"StartProject\",outcome=\"rejected\"} 1"
        ));
        assert!(text.contains("hub_events_appended_total{aggregate_type=\"Project\"} 2"));
        assert!(text.contains(
            "hub_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"
        ));
        assert!(text.contains("# TYPE hub_relay_lag_events gauge"));
    }
}
