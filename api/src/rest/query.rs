//! `GET /api/events` and `GET /api/events/{id}`: the event log, oldest
//! first (feed order), from the `event_log` read model.
//!
//! `GET /api/events` filters by `subject`, `correlation_id`, `type` (event
//! types, repeated or comma-separated), `since` and `until`, and pages with
//! `limit` and `after`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use domain::SubjectFilter;
use infrastructure::nats::Envelope;
use infrastructure::Origin;
use projections::EventFilter;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ErrorBody, RestError};
use super::params::{correlation_id, event_types, timestamp};
use crate::http::access::Access;
use crate::state::Hub;

/// Events per answer when `limit` is not given.
const DEFAULT_LIMIT: u32 = 100;
/// Most events per answer.
const MAX_LIMIT: u32 = 1000;
/// Response header holding the cursor to pass as `after` for the next page,
/// present only when more events match.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// The query parameters, as text: each is parsed with its own message.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A NATS pattern (`hub.*.audit.>`) or a `LIKE` pattern with `%`.
    #[param(example = "hub.local-hub.audit.>")]
    subject: Option<String>,
    /// RFC 3339; events recorded at or after it.
    #[param(value_type = Option<DateTime<Utc>>)]
    since: Option<String>,
    /// RFC 3339; events recorded before it.
    #[param(value_type = Option<DateTime<Utc>>)]
    until: Option<String>,
    /// Events of one request.
    #[param(max_length = 256)]
    correlation_id: Option<String>,
    /// 1-1000, default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `x-next-cursor` of the previous answer.
    after: Option<String>,
    /// Event types (`ProjectCreated`), each value comma-separated; the
    /// parameter may be repeated (at most 100 types).
    #[param(rename = "type", value_type = Option<Vec<String>>, style = Form, explode)]
    types: Vec<String>,
}

impl ListParams {
    /// Collects the query string's pairs; other parameters are ignored, as
    /// they always were.
    ///
    /// # Errors
    /// A parameter other than `type` given twice.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, RestError> {
        let mut params = Self::default();
        for (key, value) in pairs {
            let slot = match key.as_str() {
                "subject" => &mut params.subject,
                "since" => &mut params.since,
                "until" => &mut params.until,
                "correlation_id" => &mut params.correlation_id,
                "limit" => &mut params.limit,
                "after" => &mut params.after,
                "type" => {
                    params.types.push(value);
                    continue;
                }
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(RestError::invalid(format!(
                    "{key} is given more than once; only type may be repeated"
                )));
            }
        }
        Ok(params)
    }
}

// The event's one view (`Envelope`) without its store coordinates
// (`event_version`, `position`, `transaction_id`), which this API has never
// shown; the OpenAPI schema is derived from this struct (the doc comment is
// its description).
/// One event as the REST API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventBody {
    /// The event's id.
    id: Uuid,
    /// The NATS subject it is published on.
    subject: String,
    /// Who recorded it: `{hub_id, service, user}`.
    #[schema(value_type = Object)]
    origin: Origin,
    /// The request it belongs to.
    correlation_id: Option<String>,
    /// The event or request that caused it.
    causation_id: Option<String>,
    /// The event's data.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// When it was recorded.
    timestamp: DateTime<Utc>,
    /// e.g. `ProjectCreated`, `IntegrationEventPublished`.
    event_type: String,
    /// e.g. `Project`, `IntegrationEvent`.
    aggregate_type: String,
    /// The aggregate instance.
    aggregate_id: String,
    /// Its place in the aggregate's history, from 1.
    sequence: i64,
}

impl From<Envelope> for EventBody {
    fn from(event: Envelope) -> Self {
        Self {
            id: event.id,
            subject: event.subject,
            origin: event.origin,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            payload: event.payload,
            timestamp: event.timestamp,
            event_type: event.event_type,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
        }
    }
}

fn limit(value: Option<&str>) -> Result<u32, RestError> {
    let Some(value) = value else {
        return Ok(DEFAULT_LIMIT);
    };
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            RestError::invalid(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}, got '{}'",
                value.chars().take(32).collect::<String>()
            ))
        })
}

/// Turns the parameters into a filter, a page size and a cursor.
fn parse(params: ListParams) -> Result<(EventFilter, u32, Option<String>), RestError> {
    let subject = params
        .subject
        .as_deref()
        .map(SubjectFilter::parse)
        .transpose()
        .map_err(|err| RestError::invalid(format!("subject: {err}")))?;
    if let Some(id) = &params.correlation_id {
        correlation_id(id)?;
    }
    let filter = EventFilter {
        subject,
        correlation_id: params.correlation_id,
        event_types: event_types(&params.types)?,
        since: params
            .since
            .as_deref()
            .map(|v| timestamp("since", v))
            .transpose()?,
        until: params
            .until
            .as_deref()
            .map(|v| timestamp("until", v))
            .transpose()?,
        ..EventFilter::default()
    };
    Ok((filter, limit(params.limit.as_deref())?, params.after))
}

/// Handles `GET /api/events`: a JSON list, oldest first.
#[utoipa::path(
    get,
    path = "/api/events",
    operation_id = "listEvents",
    tag = "events",
    summary = "Read the event log",
    description = "Events oldest first (feed order). When more may match, the \
        `x-next-cursor` answer header holds the `after` of the next page: follow it until the \
        header is absent. A page whose filter has no index of its own (event types, `until`, \
        `since`, a subject pattern beside other filters) reads at most `HUB_EVENTS_PAGE_SCAN_ROWS` \
        events of the log, so it can hold fewer than `limit`, even none, and still have a \
        next page.",
    params(ListParams),
    responses(
        (status = 200, description = "The events.", body = Vec<EventBody>,
            headers(("x-next-cursor" = Option<String>, description = "The `after` of the next page; absent when no more events match."))),
        (status = 401, description = "A token is configured and was not sent.", body = ErrorBody),
        (status = 422, description = "A parameter is not acceptable; the message says which.", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`UNAVAILABLE`; retry), or the query ran past `HUB_DB_READ_TIMEOUT_MS` (`QUERY_TIMEOUT`; narrow it).", body = ErrorBody),
    ),
    security((), ("token" = []))
)]
pub async fn list(
    State(access): State<Arc<Access>>,
    State(hub): State<Hub>,
    headers: HeaderMap,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, RestError> {
    if !access.can_read(&headers) {
        return Err(RestError::Unauthenticated);
    }
    let Query(pairs) = pairs.map_err(|rejection| {
        RestError::invalid(format!(
            "the query string is malformed: {}",
            rejection.body_text()
        ))
    })?;
    let (filter, limit, after) = parse(ListParams::from_pairs(pairs)?)?;
    let page = hub.read.events(&filter, limit, after.as_deref()).await?;
    let next = page.next_cursor();
    let events: Vec<EventBody> = page
        .items
        .into_iter()
        .map(|(_, row)| EventBody::from(row))
        .collect();
    let mut response = Json(events).into_response();
    if let Some(value) = next.and_then(|cursor| HeaderValue::from_str(&cursor).ok()) {
        response.headers_mut().insert(NEXT_CURSOR_HEADER, value);
    }
    Ok(response)
}

/// Handles `GET /api/events/{id}`: one event, or 404.
#[utoipa::path(
    get,
    path = "/api/events/{id}",
    operation_id = "getEvent",
    tag = "events",
    summary = "One event",
    params(("id" = Uuid, Path, description = "The event's id.")),
    responses(
        (status = 200, description = "The event.", body = EventBody),
        (status = 401, description = "A token is configured and was not sent.", body = ErrorBody),
        (status = 404, description = "No event has this id.", body = ErrorBody),
        (status = 422, description = "The id is not a UUID.", body = ErrorBody),
        (status = 503, description = "The database is unavailable (`UNAVAILABLE`; retry), or the query ran past `HUB_DB_READ_TIMEOUT_MS` (`QUERY_TIMEOUT`; narrow it).", body = ErrorBody),
    ),
    security((), ("token" = []))
)]
pub async fn one(
    State(access): State<Arc<Access>>,
    State(hub): State<Hub>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<EventBody>, RestError> {
    if !access.can_read(&headers) {
        return Err(RestError::Unauthenticated);
    }
    let id = Uuid::parse_str(&id).map_err(|_| {
        RestError::invalid(format!(
            "'{}' is not a valid event id: expected a UUID such as 6f1c2f4e-8a0b-4b5e-9c3d-2a1b0c9d8e7f",
            id.chars().take(64).collect::<String>()
        ))
    })?;
    let row = hub.read.event(id).await?;
    row.map(|row| Json(EventBody::from(row)))
        .ok_or_else(|| RestError::NotFound(format!("no event has the id {id}")))
}

#[cfg(test)]
mod tests {
    use super::super::params::MAX_TYPES;
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ListParams {
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let uri: axum::http::Uri = format!("/api/events?{query}").parse().unwrap();
        let pairs = Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .unwrap()
            .0;
        ListParams::from_pairs(pairs).unwrap()
    }

    #[test]
    fn limits_outside_one_to_a_thousand_are_refused() {
        assert_eq!(limit(None).unwrap(), 100);
        assert_eq!(limit(Some("1")).unwrap(), 1);
        assert_eq!(limit(Some("1000")).unwrap(), 1000);
        for bad in ["0", "1001", "-1", "ten", "", "1.5", "99999999999"] {
            let err = limit(Some(bad)).unwrap_err();
            assert!(err.to_string().contains("from 1 to 1000"), "{bad}");
        }
    }

    #[test]
    fn every_parameter_is_parsed_or_refused() {
        let (filter, limit, after) = parse(params(&[
            ("subject", "hub.*.audit.%3E"),
            ("since", "2024-05-01T12:00:00Z"),
            ("correlation_id", "c-1"),
            ("limit", "5"),
            ("after", "abc"),
        ]))
        .unwrap();
        assert!(matches!(filter.subject, Some(SubjectFilter::Nats(_))));
        assert!(filter.since.is_some());
        assert_eq!(filter.correlation_id.as_deref(), Some("c-1"));
        assert_eq!((limit, after.as_deref()), (5, Some("abc")));
        assert!(parse(params(&[("subject", "hub..x")])).is_err());
        assert!(parse(params(&[("until", "soon")])).is_err());
        assert!(parse(params(&[("correlation_id", "a%00b")])).is_err());
    }

    #[test]
    fn types_are_repeated_or_comma_separated_and_other_parameters_are_single() {
        let (filter, _, _) = parse(params(&[
            ("type", "ProjectCreated,%20ProjectStarted"),
            ("type", "ProjectStopped"),
        ]))
        .unwrap();
        assert_eq!(
            filter.event_types.unwrap(),
            ["ProjectCreated", "ProjectStarted", "ProjectStopped"]
        );
        let (filter, _, _) = parse(params(&[("subject", "hub.%3E")])).unwrap();
        assert!(filter.event_types.is_none());
        for bad in ["", ",", "A,,B", "A%00", &"x".repeat(257)] {
            let err = parse(params(&[("type", bad)])).unwrap_err();
            assert!(err.to_string().contains("event types"), "{bad}: {err}");
        }
        let many = vec!["T"; MAX_TYPES + 1].join(",");
        assert!(parse(params(&[("type", &many)])).is_err());
        let twice = Query::<Vec<(String, String)>>::try_from_uri(
            &"/api/events?limit=1&limit=2".parse().unwrap(),
        )
        .unwrap()
        .0;
        let err = ListParams::from_pairs(twice).unwrap_err();
        assert!(
            err.to_string().contains("limit is given more than once"),
            "{err}"
        );
    }
}
