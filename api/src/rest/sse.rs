//! `GET /api/events/stream` with `Accept: text/event-stream`: events as
//! Server-Sent Events, resumable without a gap or a duplicate.
//!
//! Each event is `id: <global position>`, `event: <event type>` and
//! `data: <envelope JSON>` (what the WebSocket stream sends under
//! `"data"`). A quiet stream gets a `: keepalive` comment every
//! `HUB_SSE_KEEPALIVE_SECS`.
//!
//! Where it starts:
//! - `Last-Event-ID` (sent by `EventSource` when it reconnects), else
//!   `?after=<id>`: right after that event, replayed from the store, then
//!   live. `0` is the start of the log.
//! - else `?since=<time>`: the events recorded at or after it, replayed
//!   from the store (from [`projections::ReadModels::replay_start_since`]),
//!   then live.
//! - else live only: the events that become readable from the moment the
//!   stream opens (it starts after [`infrastructure::feed::last_readable`],
//!   so that even a live-only stream has a position to catch up from).
//!
//! Replay and live are one stream ([`crate::live_events`]). When the live
//! broadcast drops events for a slow client, the stream goes back to the
//! store after the last event it passed on, so a client never loses one.
//!
//! Filters: `subject` (NATS pattern, default `hub.>`), `correlation_id`,
//! `type` (repeated or comma-separated) and `since`. Each stream holds one
//! of the hub's socket places, like a WebSocket, and ends when the hub
//! starts shutting down (or the store cannot be read: the client resumes
//! with `Last-Event-ID`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::SubjectFilter;
use futures::StreamExt as _;
use infrastructure::feed::{last_readable, position_of, FeedPosition};
use infrastructure::nats::Envelope;
use projections::{EventFilter, QueryError};

use super::error::RestError;
use super::params::{correlation_id, event_types, timestamp};
use crate::http::auth;
use crate::live_events::{replay_then_live, LiveError, OnLag};
use crate::state::AppState;

/// The header `EventSource` resumes with (lower case, as `http` names it).
pub const LAST_EVENT_ID: &str = "last-event-id";

/// The query parameters, as given.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Params {
    /// A NATS pattern (default `hub.>`) or a `LIKE` pattern with `%`.
    #[param(example = "hub.local-hub.audit.>")]
    subject: Option<String>,
    /// The API token, for clients that cannot set headers (`EventSource`).
    token: Option<String>,
    /// Start right after the event with this `id` (`0`: the start of the
    /// log). `Last-Event-ID` wins over it. SSE only.
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    /// Start with the events recorded at or after this time: RFC 3339 or
    /// `1h ago`, `30m`, `yesterday`, `last monday`, `2026-11-30 14:00`.
    /// SSE only.
    #[param(example = "1h ago")]
    since: Option<String>,
    /// Events of one request. SSE only.
    #[param(max_length = 256)]
    correlation_id: Option<String>,
    /// Event types, repeated or comma-separated (at most 100). SSE only.
    #[param(rename = "type", value_type = Option<Vec<String>>, style = Form, explode)]
    types: Vec<String>,
}

impl Params {
    /// Reads the query string: `type` may be repeated, the others not.
    fn parse(uri: &Uri) -> Result<Self, RestError> {
        let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(uri) else {
            return Err(RestError::invalid("the query string is malformed"));
        };
        let mut params = Self::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "type" => {
                    params.types.push(value);
                    continue;
                }
                "subject" => &mut params.subject,
                "token" => &mut params.token,
                "after" => &mut params.after,
                "since" => &mut params.since,
                "correlation_id" => &mut params.correlation_id,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(RestError::invalid(format!(
                    "the query string names {name} more than once"
                )));
            }
        }
        Ok(params)
    }
}

/// Reads `since`: an RFC 3339 timestamp (a `+` sent unencoded arrives as
/// a space and is repaired), or a form people type (`1h ago`, `30m`,
/// `yesterday`, `last monday`, `2026-11-30 14:00`), resolved against the
/// hub's clock and time zone ([`crate::natural_time`]).
///
/// # Errors
/// Anything else, with the accepted forms.
pub fn parse_since(value: &str) -> Result<DateTime<Utc>, RestError> {
    timestamp("since", value).or_else(|_| {
        crate::natural_time::parse(value, &chrono::Local::now())
            .map_err(|err| RestError::invalid(format!("since: {err}")))
    })
}

/// The event to resume after: `Last-Event-ID` when sent (and not blank),
/// else `after`, as given, with the name to quote in errors.
fn resume_id<'a>(
    headers: &'a HeaderMap,
    after: Option<&'a str>,
) -> Result<Option<(&'static str, &'a str)>, RestError> {
    if let Some(value) = headers.get(LAST_EVENT_ID) {
        let value = value
            .to_str()
            .map_err(|_| RestError::invalid("Last-Event-ID must be an event id of this stream"))?;
        if !value.trim().is_empty() {
            return Ok(Some(("Last-Event-ID", value)));
        }
    }
    Ok(after.map(|value| ("after", value)))
}

/// The feed position of the event with global position `value` (`0`: the
/// start of the log).
async fn resolve(state: &AppState, name: &str, value: &str) -> Result<FeedPosition, RestError> {
    let position = value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| {
            RestError::invalid(format!(
                "{name} must be the id of an event of this stream (a whole number, 0 for the start), got '{}'",
                value.chars().take(64).collect::<String>()
            ))
        })?;
    if position == 0 {
        return Ok(FeedPosition::START);
    }
    position_of(state.hub.read.pool(), position)
        .await
        .map_err(QueryError::from)?
        .ok_or_else(|| {
            RestError::NotFound(format!(
                "no event has the id {position}; resume after an id this stream sent, or use since"
            ))
        })
}

/// The stream's filter, from the parameters.
fn filter(params: &Params) -> Result<EventFilter, RestError> {
    let subject = SubjectFilter::parse(params.subject.as_deref().unwrap_or("hub.>"))
        .map_err(|err| RestError::invalid(format!("subject: {err}")))?;
    if let Some(id) = &params.correlation_id {
        correlation_id(id)?;
    }
    Ok(EventFilter {
        subject: Some(subject),
        correlation_id: params.correlation_id.clone(),
        event_types: event_types(&params.types)?,
        since: params.since.as_deref().map(parse_since).transpose()?,
        ..EventFilter::default()
    })
}

/// One event on the wire.
fn sse_event(event: &Envelope) -> Event {
    // The same JSON as the socket's `"data"` (a `Value`, so the same key
    // order).
    let data = serde_json::to_value(event).map_or_else(|_| "null".to_owned(), |v| v.to_string());
    // A line break would end the field; no event type has one, but a
    // stored row is not trusted to.
    let event_type = event.event_type.replace(['\r', '\n'], " ");
    Event::default()
        .id(event.position.to_string())
        .event(event_type)
        .data(data)
}

/// Serves the SSE stream: checks the query, the token and where to start,
/// takes a socket place, then streams.
pub(super) async fn stream(state: AppState, uri: &Uri, headers: &HeaderMap) -> Response {
    match open(state, uri, headers).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn open(state: AppState, uri: &Uri, headers: &HeaderMap) -> Result<Response, RestError> {
    let params = Params::parse(uri)?;
    let access = &state.access;
    let authorized = match (&access.token, &params.token) {
        (Some(token), Some(sent)) => auth::token_matches(token, sent),
        _ => access.can_read(headers),
    };
    if !authorized {
        tracing::info!("refused an SSE event stream without a valid token");
        return Err(RestError::Unauthenticated);
    }
    let filter = filter(&params)?;
    let resume = match resume_id(headers, params.after.as_deref())? {
        Some((name, value)) => Some(resolve(&state, name, value).await?),
        None => None,
    };
    let Some(slot) = state.sockets.take() else {
        return Ok(crate::http::ws::too_many_sockets());
    };
    // Subscribe before choosing the start: whatever is relayed from now on
    // is either after the start (replayed or live) or skipped as replayed.
    let live = state.hub.live.subscribe();
    let start = match (resume, filter.since) {
        (Some(at), _) => at,
        (None, Some(since)) => state.hub.read.replay_start_since(since).await?,
        (None, None) => {
            let mut conn = state
                .hub
                .read
                .pool()
                .acquire()
                .await
                .map_err(QueryError::from)?;
            last_readable(&mut conn).await.map_err(QueryError::from)?
        }
    };
    tracing::debug!(subject = ?filter.subject, ?start, "SSE event stream opened");
    let metrics = state.hub.metrics.clone();
    let on_lag = OnLag::Replay(Arc::new(move |_skipped| metrics.sse_caught_up()));
    let events = replay_then_live(
        state.hub.read.pool().clone(),
        state.hub.id.clone(),
        live,
        filter,
        Some(start),
        on_lag,
    )
    .take_until(state.stopping.clone().stopped())
    // The socket place is held by the stream: it is freed when the
    // response body is dropped (the client went away, or the stream ended).
    .scan(slot, |_slot, event| {
        futures::future::ready(match event {
            Ok(event) => Some(Ok::<_, Infallible>(sse_event(&event))),
            Err(err) => {
                // The client reconnects with Last-Event-ID and resumes.
                match &err {
                    LiveError::Store(cause) => {
                        tracing::warn!(error = %cause, "an SSE event stream ended: the store could not be read");
                    }
                    LiveError::Lagged { .. } => {
                        tracing::warn!(error = %err, "an SSE event stream ended");
                    }
                }
                None
            }
        })
    });
    let keep_alive = KeepAlive::new()
        .interval(state.rest.sse_keepalive)
        .text("keepalive");
    // `Sse` sets `Content-Type: text/event-stream` and `Cache-Control:
    // no-cache`; nginx would buffer the stream without this one.
    let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Result<Params, RestError> {
        Params::parse(&format!("/api/events/stream?{query}").parse().unwrap())
    }

    #[test]
    fn types_may_be_repeated_or_comma_separated() {
        let given = params("type=A,B&type=%20C%20&subject=hub.%3E").unwrap();
        assert_eq!(
            event_types(&given.types).unwrap(),
            Some(vec!["A".to_owned(), "B".to_owned(), "C".to_owned()])
        );
        assert_eq!(event_types(&params("").unwrap().types).unwrap(), None);
        assert!(event_types(&params("type=,").unwrap().types).is_err());
    }

    #[test]
    fn single_parameters_may_not_be_repeated() {
        for query in ["subject=a&subject=b", "after=1&after=2", "since=x&since=y"] {
            let err = params(query).unwrap_err();
            assert!(err.to_string().contains("more than once"), "{query}: {err}");
        }
        let given = params("after=7&token=t&correlation_id=c&since=s&other=1").unwrap();
        assert_eq!(given.after.as_deref(), Some("7"));
        assert_eq!(given.token.as_deref(), Some("t"));
        assert_eq!(given.correlation_id.as_deref(), Some("c"));
        assert_eq!(given.since.as_deref(), Some("s"));
    }

    #[test]
    fn last_event_id_wins_over_after_unless_blank() {
        let mut headers = HeaderMap::new();
        assert_eq!(resume_id(&headers, None).unwrap(), None);
        assert_eq!(
            resume_id(&headers, Some("3")).unwrap(),
            Some(("after", "3"))
        );
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("9"));
        assert_eq!(
            resume_id(&headers, Some("3")).unwrap(),
            Some(("Last-Event-ID", "9"))
        );
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static(" "));
        assert_eq!(
            resume_id(&headers, Some("3")).unwrap(),
            Some(("after", "3"))
        );
    }

    #[test]
    fn since_is_rfc3339_or_a_form_people_type() {
        let at = |text: &str| parse_since(text).unwrap();
        assert_eq!(
            at("2024-05-01T12:00:00 02:00"),
            at("2024-05-01T10:00:00Z"),
            "a '+' that arrived as a space"
        );
        let before = Utc::now();
        let hour_ago = at("1h ago");
        assert!(hour_ago <= before - chrono::Duration::hours(1) + chrono::Duration::seconds(5));
        assert!(hour_ago >= before - chrono::Duration::hours(1) - chrono::Duration::seconds(5));
        let half_hour_ago = before - chrono::Duration::minutes(30);
        assert!((at("30m") - half_hour_ago).num_seconds().abs() < 5);
        for natural in [
            "yesterday",
            "last monday",
            "2024-05-01",
            "2024-05-01 14:00",
            "now",
        ] {
            assert!(parse_since(natural).is_ok(), "{natural}");
        }
        for bad in ["", "soon", "2024-13-01T00:00:00Z", "1 fortnight ago"] {
            let err = parse_since(bad).unwrap_err().to_string();
            assert!(
                err.contains("since") || err.contains("RFC 3339"),
                "{bad}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn an_event_is_its_position_its_type_and_its_envelope() {
        let envelope: Envelope = serde_json::from_value(serde_json::json!({
            "id": "6f1c2f4e-8a0b-4b5e-9c3d-2a1b0c9d8e7f",
            "subject": "hub.h.audit.done",
            "origin": {"hub_id": "h", "service": "s", "user": "u"},
            "correlation_id": null,
            "causation_id": null,
            "payload": {"text": "two\nlines"},
            "timestamp": "2024-05-01T12:00:00Z",
            "aggregate_type": "IntegrationEvent",
            "aggregate_id": "a",
            "sequence": 1,
            "event_type": "Odd\r\nType",
            "event_version": "1.0",
            "position": 42,
            "transaction_id": 7
        }))
        .unwrap();
        let events = futures::stream::iter([Ok::<_, Infallible>(sse_event(&envelope))]);
        let body = Sse::new(events).into_response().into_body();
        let wire = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let data = serde_json::to_value(&envelope).unwrap().to_string();
        assert_eq!(
            String::from_utf8(wire.to_vec()).unwrap(),
            format!("id: 42\nevent: Odd  Type\ndata: {data}\n\n")
        );
    }
}
