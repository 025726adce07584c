//! `GET /health` and `GET /health/nats`: is the hub able to do its work?

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::access::{self, Access};
use crate::rest::error::ErrorBody;
use crate::state::{AppState, Nats};

/// The hub's state in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Everything works.
    Healthy,
    /// Commands work; something needs attention (see the details).
    Degraded,
    /// The database does not answer.
    Unhealthy,
}

/// `GET /health`'s answer. Without the token (when one is set) only
/// `status` is given.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    /// The hub's state.
    status: HealthStatus,
    /// The database.
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<DatabaseReport>,
    /// The NATS connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    nats: Option<NatsReport>,
    /// Events the NATS relay has not published yet (`null` when the
    /// database does not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_lag: Option<Option<i64>>,
    /// What the event feed waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    feed: Option<FeedReport>,
    /// Each feed consumer, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    consumers: Option<BTreeMap<String, ConsumerReport>>,
}

/// The database connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseReport {
    /// Whether it answers.
    connected: bool,
}

/// The NATS connection (`GET /health/nats`'s answer, and part of
/// `/health`'s).
#[derive(Debug, Serialize, ToSchema)]
pub struct NatsReport {
    /// Whether the client is connected.
    connected: bool,
    /// The configured URL(s), without credentials.
    url: String,
    /// The name of the server it is connected to.
    server: Option<String>,
}

/// The event feed's wait.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedReport {
    /// How long the oldest open event-writing transaction has been open
    /// (readers wait below it until it ends).
    wait_seconds: f64,
    /// Those open longer than `HUB_FEED_STALL_WARN_SECS`, oldest first.
    held_back_by: Vec<FeedHolder>,
}

/// An open transaction that appends events.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedHolder {
    /// Its backend's process id.
    pid: i32,
    /// The database it is connected to.
    database: Option<String>,
    /// What its client calls itself.
    application_name: Option<String>,
    /// `active`, `idle in transaction`, ...
    state: Option<String>,
    /// How long it has been open.
    open_seconds: f64,
}

/// One feed consumer (read model, NATS relay, process manager).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerReport {
    /// Whether this process runs it (one process does).
    active_here: bool,
    /// Events handled in total.
    handled: i64,
    /// Committed events it has not handled yet.
    lag: Option<i64>,
    /// Events it has parked.
    parked: Option<i64>,
    /// The first five parked events.
    first_parked: Option<Vec<ParkedReport>>,
    /// The event it is halted on.
    halted: Option<HaltedReport>,
    /// Its last failure, cleared by the next success.
    last_error: Option<String>,
    /// Failures in a row.
    consecutive_failures: u32,
}

/// A parked event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkedReport {
    /// The event's id.
    event_id: Uuid,
    /// Its type.
    event_type: String,
    /// What the consumer said (absent when it waits behind another).
    error: Option<String>,
    /// The parked event of the same aggregate it waits behind.
    held_behind: Option<Uuid>,
}

/// The event a consumer is halted on.
#[derive(Debug, Serialize, ToSchema)]
pub struct HaltedReport {
    /// The event's id.
    event_id: Uuid,
    /// `<transaction_id>:<position>`.
    position: String,
    /// What the consumer said.
    error: String,
}

/// `GET /health` and `GET /health/nats`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/nats", get(nats))
}

/// `{status, database, nats, relay_lag, feed, consumers}`; with a token
/// set, a request without it gets only `{status}`.
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
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "getHealth",
    tag = "health",
    summary = "Whether the hub can do its work",
    responses(
        (status = 200, description = "`healthy` or `degraded`.", body = HealthReport),
        (status = 503, description = "`unhealthy`: the database does not answer.", body = HealthReport),
    ),
    security((), ("token" = []))
)]
pub async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let database_up = infrastructure::db::ping(state.hub.pool()).await;
    let nats_up = infrastructure::nats::is_connected(&state.nats.client);
    let parked_counts = if database_up {
        match infrastructure::feed::parked_counts(state.hub.pool()).await {
            Ok(counts) => Some(counts),
            Err(err) => {
                tracing::warn!(error = %err, "could not count parked events for /health");
                None
            }
        }
    } else {
        None
    };
    let mut consumers = BTreeMap::new();
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
            infrastructure::feed::consumer_lag(state.hub.pool(), feed.name())
                .await
                .ok()
        } else {
            None
        };
        // Which events, so that an operator can act on them
        // (`hub projections retry|skip`).
        let first_parked = match parked {
            Some(n) if n > 0 => {
                infrastructure::feed::first_parked_events(state.hub.pool(), feed.name(), 5)
                    .await
                    .map(|events| {
                        events
                            .into_iter()
                            .map(|event| ParkedReport {
                                event_id: event.event_id,
                                event_type: event.event_type,
                                error: event.error,
                                held_behind: event.held_behind,
                            })
                            .collect::<Vec<_>>()
                    })
                    .ok()
            }
            _ => None,
        };
        let halted = status.halted.as_ref().map(|on| HaltedReport {
            event_id: on.event_id,
            position: format!("{}:{}", on.position.transaction_id, on.position.position),
            error: on.error.clone(),
        });
        consumers.insert(
            feed.name().to_owned(),
            ConsumerReport {
                active_here: status.active,
                handled: status.handled,
                lag,
                parked,
                first_parked,
                halted,
                last_error: status.last_error.clone(),
                consecutive_failures: status.consecutive_failures,
            },
        );
    }
    // The open transactions that append events, oldest first: readers wait
    // below the oldest until it ends.
    let holders = if database_up {
        infrastructure::feed::fence_holders(state.hub.pool(), 5)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "could not read the feed's fence holders for /health"))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let warn_after = state.feed_stall_warn.as_secs_f64();
    let held_back_by: Vec<FeedHolder> = holders
        .iter()
        .filter(|holder| holder.open_seconds >= warn_after)
        .map(|holder| FeedHolder {
            pid: holder.pid,
            database: holder.database.clone(),
            application_name: holder.application_name.clone(),
            state: holder.state.clone(),
            open_seconds: holder.open_seconds,
        })
        .collect();
    failing |= !held_back_by.is_empty();
    let feed = FeedReport {
        wait_seconds: holders.first().map_or(0.0, |holder| holder.open_seconds),
        held_back_by,
    };
    let (code, status) = match (database_up, nats_up && !failing) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, HealthStatus::Unhealthy),
        (true, false) => (StatusCode::OK, HealthStatus::Degraded),
        (true, true) => (StatusCode::OK, HealthStatus::Healthy),
    };
    if !state.access.can_write(&headers) {
        // A token deployment tells a probe without the token only this.
        let summary = HealthReport {
            status,
            database: None,
            nats: None,
            relay_lag: None,
            feed: None,
            consumers: None,
        };
        return (code, Json(summary)).into_response();
    }
    let relay_lag = consumers
        .get(infrastructure::nats::NatsRelay::NAME)
        .and_then(|c| c.lag);
    let report = HealthReport {
        status,
        database: Some(DatabaseReport {
            connected: database_up,
        }),
        nats: Some(nats_report(&state.nats)),
        relay_lag: Some(relay_lag),
        feed: Some(feed),
        consumers: Some(consumers),
    };
    (code, Json(report)).into_response()
}

fn nats_report(nats: &Nats) -> NatsReport {
    let connected = infrastructure::nats::is_connected(&nats.client);
    NatsReport {
        connected,
        url: infrastructure::redact::url(&nats.url),
        server: connected.then(|| nats.client.server_info().server_name),
    }
}

/// `{connected, url, server}` of the NATS connection (the URL without its
/// credentials; the name of the server it is connected to); needs the
/// token when one is set.
#[utoipa::path(
    get,
    path = "/health/nats",
    operation_id = "getNatsHealth",
    tag = "health",
    summary = "The NATS connection",
    responses(
        (status = 200, description = "The connection, up or down.", body = NatsReport),
        (status = 401, description = "A token is configured and was not sent.", body = ErrorBody),
    ),
    security((), ("token" = []))
)]
pub async fn nats(
    State(access): State<Arc<Access>>,
    State(nats): State<Nats>,
    headers: HeaderMap,
) -> Response {
    if !access.can_write(&headers) {
        return access::unauthenticated();
    }
    Json(nats_report(&nats)).into_response()
}
