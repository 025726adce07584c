//! `GET /health` and `GET /health/nats`: is the hub able to do its work?

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::app::AppState;
use crate::http::access;

/// `{status, database, nats, consumers}`; with a token set, a request
/// without it gets only `{status}`.
///
/// - `healthy` (200): the database answers, NATS is connected, no feed
///   consumer is failing, halted or has parked events.
/// - `degraded` (200): commands work, but NATS is down, a consumer is
///   failing or halted on an event, a consumer has parked events (a read
///   model's rows for those aggregates are stale until `hub projections
///   retry`), or an open transaction that appends events has held the feed
///   back for `HUB_FEED_STALL_WARN_SECS` (`feed.held_back_by` names it).
///   Still 200: the hub serves, and restarting it would not help.
/// - `unhealthy` (503): the database does not answer.
///
/// Each feed consumer (read models, NATS relay, process manager) reports its
/// lag (committed events it has not handled yet), its parked events (how
/// many, and the first five with their errors), and, when halted, the event
/// it is stopped on.
pub async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let database_up = infrastructure::db::ping(&state.pool).await;
    let nats_up = infrastructure::nats::is_connected(&state.nats);
    let parked_counts = if database_up {
        match infrastructure::feed::parked_counts(&state.pool).await {
            Ok(counts) => Some(counts),
            Err(err) => {
                tracing::warn!(error = %err, "could not count parked events for /health");
                None
            }
        }
    } else {
        None
    };
    let mut consumers = serde_json::Map::new();
    let mut failing = false;
    for feed in state.feeds.iter() {
        let status = feed.status();
        let parked = parked_counts
            .as_ref()
            .map(|counts| counts.get(feed.name()).copied().unwrap_or(0));
        failing |= status.consecutive_failures > 0
            || status.halted.is_some()
            || parked.is_some_and(|n| n > 0);
        let lag = if database_up {
            infrastructure::feed::consumer_lag(&state.pool, feed.name())
                .await
                .ok()
        } else {
            None
        };
        // Which events, so that an operator can act on them
        // (`hub projections retry|skip`).
        let first_parked = match parked {
            Some(n) if n > 0 => {
                infrastructure::feed::first_parked_events(&state.pool, feed.name(), 5)
                    .await
                    .map(|events| {
                        events
                            .into_iter()
                            .map(|event| {
                                json!({
                                    "event_id": event.event_id,
                                    "event_type": event.event_type,
                                    "error": event.error,
                                    "held_behind": event.held_behind,
                                })
                            })
                            .collect::<Vec<_>>()
                    })
                    .ok()
            }
            _ => None,
        };
        let halted = status.halted.as_ref().map(|on| {
            json!({
                "event_id": on.event_id,
                "position": format!("{}:{}", on.position.transaction_id, on.position.position),
                "error": on.error,
            })
        });
        consumers.insert(
            feed.name().to_owned(),
            json!({
                "active_here": status.active,
                "handled": status.handled,
                "lag": lag,
                "parked": parked,
                "first_parked": first_parked,
                "halted": halted,
                "last_error": status.last_error,
                "consecutive_failures": status.consecutive_failures,
            }),
        );
    }
    // The open transactions that append events, oldest first: readers wait
    // below the oldest until it ends.
    let holders = if database_up {
        infrastructure::feed::fence_holders(&state.pool, 5)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "could not read the feed's fence holders for /health"))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let warn_after = state.feed_stall_warn.as_secs_f64();
    let held_back_by: Vec<serde_json::Value> = holders
        .iter()
        .filter(|holder| holder.open_seconds >= warn_after)
        .map(|holder| {
            json!({
                "pid": holder.pid,
                "database": holder.database,
                "application_name": holder.application_name,
                "state": holder.state,
                "open_seconds": holder.open_seconds,
            })
        })
        .collect();
    failing |= !held_back_by.is_empty();
    let feed = json!({
        "wait_seconds": holders.first().map_or(0.0, |holder| holder.open_seconds),
        "held_back_by": held_back_by,
    });
    let (code, status) = match (database_up, nats_up && !failing) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy"),
        (true, false) => (StatusCode::OK, "degraded"),
        (true, true) => (StatusCode::OK, "healthy"),
    };
    let relay_lag = consumers
        .get(infrastructure::nats::NatsRelay::NAME)
        .and_then(|c| c.get("lag").cloned())
        .unwrap_or(serde_json::Value::Null);
    if !state.access.can_write(&headers) {
        // A token deployment tells a probe without the token only this.
        return (code, Json(json!({ "status": status }))).into_response();
    }
    (
        code,
        Json(json!({
            "status": status,
            "database": { "connected": database_up },
            "nats": {
                "connected": nats_up,
                "url": infrastructure::redact::url(&state.nats_url),
                "server": nats_up.then(|| state.nats.server_info().server_name),
            },
            "relay_lag": relay_lag,
            "feed": feed,
            "consumers": consumers,
        })),
    )
        .into_response()
}

/// `{connected, url, server}` of the NATS connection (the URL without its
/// credentials; the name of the server it is connected to); needs the
/// token when one is set.
pub async fn nats(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.access.can_write(&headers) {
        return access::unauthenticated();
    }
    let connected = infrastructure::nats::is_connected(&state.nats);
    Json(json!({
        "connected": connected,
        "url": infrastructure::redact::url(&state.nats_url),
        "server": connected.then(|| state.nats.server_info().server_name),
    }))
    .into_response()
}
