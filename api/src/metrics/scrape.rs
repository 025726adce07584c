//! `GET /metrics`: the scrape-time gauges refreshed, then the registry in
//! the Prometheus text format.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use infrastructure::nats::NatsRelay;

use crate::state::AppState;

/// `GET /metrics`: refreshes the scrape-time gauges, then answers the
/// registry in the Prometheus text format. Needs the token when one is set.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "meta",
    summary = "Metrics in the Prometheus text format",
    responses(
        (status = 200, description = "The metrics (`docs/EVENT_SYSTEM.md` lists them).",
            content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "A token is configured and was not sent.", body = crate::rest::error::ErrorBody),
    ),
    security((), ("token" = []))
)]
pub async fn scrape(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    // Prometheus scrapes with `authorization: Bearer <token>`.
    if !state.access.can_write(&headers) {
        return crate::http::access::unauthenticated();
    }
    let metrics = &state.hub.metrics;
    let database_up = infrastructure::db::ping(state.hub.pool()).await;
    metrics.database_up.set(i64::from(database_up));
    metrics
        .nats_connected
        .set(i64::from(infrastructure::nats::is_connected(
            &state.nats.client,
        )));
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    // Subscribers, not live-feed receivers: the event sockets and SSE
    // streams hold one each; GraphQL subscribers of one operation share
    // one, so they are counted as the operations their sockets run.
    let fanout = &state.fanout;
    let other_readers = state
        .hub
        .live
        .subscribers()
        .saturating_sub(fanout.live_readers());
    metrics
        .subscriptions
        .set(count(other_readers + state.subscriptions.count()));
    metrics.subscription_groups.set(count(fanout.groups()));
    metrics.subscription_runs.set(count(fanout.runs()));
    metrics.connections.set(count(state.connections.open()));
    metrics.sockets.set(count(state.sockets.open()));
    // Stale lags would mislead: without an answer, the series disappear.
    metrics.feed_lag.reset();
    metrics.feed_parked.reset();
    metrics.relay_lag.set(0);
    metrics.feed_wait.set(0.0);
    if database_up {
        match infrastructure::feed::fence_holders(state.hub.pool(), 1).await {
            Ok(holders) => {
                if let Some(oldest) = holders.first() {
                    metrics.feed_wait.set(oldest.open_seconds);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read the feed's fence holders for /metrics")
            }
        }
    }
    let parked = if database_up {
        infrastructure::feed::parked_counts(state.hub.pool())
            .await
            .inspect_err(
                |err| tracing::warn!(error = %err, "could not count parked events for /metrics"),
            )
            .ok()
    } else {
        None
    };
    for feed in state.feeds.iter() {
        let name = feed.name();
        let status = feed.status();
        metrics
            .feed_handled
            .with_label_values(&[name])
            .set(status.handled);
        metrics
            .feed_batches
            .with_label_values(&[name])
            .set(i64::try_from(status.batches).unwrap_or(i64::MAX));
        if let Some(parked) = &parked {
            metrics
                .feed_parked
                .with_label_values(&[name])
                .set(parked.get(name).copied().unwrap_or(0));
        }
        metrics
            .feed_active
            .with_label_values(&[name])
            .set(i64::from(status.active));
        metrics
            .feed_failures
            .with_label_values(&[name])
            .set(i64::from(status.consecutive_failures));
        if !database_up {
            continue;
        }
        match infrastructure::feed::consumer_lag(state.hub.pool(), name).await {
            Ok(lag) => {
                metrics.feed_lag.with_label_values(&[name]).set(lag);
                if name == NatsRelay::NAME {
                    metrics.relay_lag.set(lag);
                }
            }
            Err(err) => {
                tracing::warn!(consumer = name, error = %err, "could not read a feed consumer's lag for /metrics")
            }
        }
    }
    match metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "could not encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
