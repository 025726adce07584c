//! `POST /api/events`: publish an integration event.
//!
//! The body is `{"subject": "hub.<hub_id>.<name...>", "payload":
//! {...}, "correlation_id": "..."?}`. The event is appended to the store as
//! an `IntegrationEvent` aggregate of its own; the feed then relays it to
//! NATS on its subject and logs it, like every other event. The answer is
//! `201 {event_id, correlation_id, timestamp, subject}`.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest as _, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use domain::{EventPayload, EventSubject, IntegrationCommand};
use infrastructure::{CommandMetadata, PublishError, Recorded};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ErrorBody, RestError};
use crate::http::correlation::{self, CorrelationId};
use crate::metrics::Outcome;
use crate::state::{AppState, Hub};

/// The command type integration events are counted under in `/metrics`.
const COMMAND: &str = "PublishIntegrationEvent";

/// Room for the envelope's other fields and the message headers, besides
/// the payload, within the NATS server's largest message.
const ENVELOPE_OVERHEAD: usize = 4096;

/// The request body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PublishRequest {
    /// `hub.<this hub's id>.<name...>`: at least three tokens of ASCII
    /// letters, digits, `-` and `_`, no wildcards, at most 255 bytes;
    /// `project` as the third token is reserved for the hub's own events.
    #[schema(
        example = "hub.local-hub.audit.security.completed",
        max_length = 255,
        pattern = r"^hub\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$"
    )]
    subject: String,
    /// A JSON object the store gives back exactly as sent (no NUL
    /// characters, nesting at most 64 deep, only numbers that survive
    /// PostgreSQL's `jsonb`).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// 1-128 letters, digits, `-`, `_`, `.`, `:`; default: the request's
    /// `X-Correlation-ID`, or a new one.
    #[serde(default)]
    #[schema(example = "audit-7")]
    correlation_id: Option<String>,
}

/// The answer to a publish.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// The stored event's id (also its `Nats-Msg-Id`).
    event_id: Uuid,
    /// The correlation id it was recorded with.
    correlation_id: String,
    /// When it was recorded.
    timestamp: DateTime<Utc>,
    /// The subject it is published on.
    subject: String,
}

/// A request whose values are all parsed.
#[derive(Debug)]
struct Publish {
    subject: EventSubject,
    payload: EventPayload,
    correlation_id: Option<String>,
}

fn parse(body: &[u8]) -> Result<Publish, RestError> {
    let request: PublishRequest = serde_json::from_slice(body).map_err(|err| {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data => RestError::invalid(format!(
                "the body must be {{\"subject\": string, \"payload\": object, \"correlation_id\": string?}}: {err}"
            )),
            Category::Io | Category::Syntax | Category::Eof => {
                RestError::MalformedJson(format!("the request body is not valid JSON: {err}"))
            }
        }
    })?;
    let subject = EventSubject::parse(&request.subject).map_err(RestError::invalid)?;
    let payload = EventPayload::parse(request.payload).map_err(RestError::invalid)?;
    if let Some(id) = &request.correlation_id {
        if !correlation::acceptable(id) {
            return Err(RestError::invalid(
                "correlation_id must be 1-128 characters of letters, digits and '-', '_', '.', ':'",
            ));
        }
    }
    Ok(Publish {
        subject,
        payload,
        correlation_id: request.correlation_id,
    })
}

/// Handles `POST /api/events`.
#[utoipa::path(
    post,
    path = "/api/events",
    operation_id = "publishEvent",
    tag = "events",
    summary = "Publish an integration event",
    description = "Records the event in the store; the hub then publishes it on NATS, once, on its subject. \
        The answer comes once the event can be read back with GET /api/events.",
    request_body(content = PublishRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded.", body = Published,
            headers(("location" = String, description = "`/api/events/{event_id}`")),
            links(("GetEvent" = (
                operation_id = "getEvent",
                parameters(("id" = "$response.body#/event_id")),
                description = "The event just recorded."
            )))),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "A token is configured and was not sent.", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time.", body = ErrorBody),
        (status = 413, description = "The body is over the limit.", body = ErrorBody),
        (status = 415, description = "The body is not declared as `application/json`.", body = ErrorBody),
        (status = 422, description = "A value is not acceptable; the message says which.", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry.", body = ErrorBody),
    ),
    security((), ("token" = []))
)]
pub async fn publish(
    State(state): State<AppState>,
    Extension(CorrelationId(request_correlation)): Extension<CorrelationId>,
    request: Request,
) -> Result<Response, RestError> {
    // Checked before the body is read: a refused client's body is never
    // waited for.
    if !crate::http::graphql::declares_json(request.headers()) {
        return Err(RestError::NotJson);
    }
    if !state.access.can_write(request.headers()) {
        return Err(RestError::Unauthenticated);
    }
    let body = Bytes::from_request(request, &state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                RestError::TooLarge(state.limits.max_body_bytes)
            } else if crate::http::server::is_body_timeout(&rejection) {
                RestError::BodyTimeout
            } else {
                RestError::MalformedJson(format!(
                    "the request body could not be read: {}",
                    rejection.body_text()
                ))
            }
        })?;
    // The relay must be able to publish the event: an envelope larger than
    // what the NATS server accepts would stop it for good.
    let nats_limit = state
        .nats
        .client
        .max_payload()
        .saturating_sub(ENVELOPE_OVERHEAD);
    if body.len() > nats_limit {
        return Err(RestError::TooLarge(nats_limit));
    }
    let request = parse(&body)?;
    let hub = &state.hub;
    let user = if state.access.token.is_some() {
        "token"
    } else {
        "anonymous"
    };
    let metadata = CommandMetadata::for_request(
        request.correlation_id.unwrap_or(request_correlation),
        hub.origin(user),
    );
    let command = IntegrationCommand::Publish {
        hub_id: hub.id.clone(),
        subject: request.subject.clone(),
        payload: request.payload,
    };
    let started = Instant::now();
    let result = state.rest.publisher.publish(command, &metadata).await;
    let outcome = match &result {
        Ok(_) => Outcome::Ok,
        Err(PublishError::Rejected(_)) => Outcome::Rejected,
        Err(PublishError::Unavailable(_)) => Outcome::Unavailable,
        Err(PublishError::Internal(_)) => Outcome::Internal,
    };
    hub.metrics
        .observe_command(COMMAND, outcome, started.elapsed());
    let recorded = result?;
    hub.metrics.appended("IntegrationEvent", 1);
    tracing::info!(event_id = %recorded.event_id, subject = %request.subject, "integration event published");
    wait_until_logged(hub, &recorded).await;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/api/events/{}", recorded.event_id),
        )],
        Json(Published {
            event_id: recorded.event_id,
            correlation_id: metadata.correlation_id,
            timestamp: recorded.recorded_at,
            subject: request.subject.to_string(),
        }),
    )
        .into_response())
}

/// Waits (bounded) until the event shows in the event log, so a client can
/// read it right after publishing. The event is stored either way: a log
/// that is behind only delays this answer, it never fails it.
async fn wait_until_logged(hub: &Hub, recorded: &Recorded) {
    match hub
        .read_your_writes
        .event(recorded.event_id, recorded.position)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(event_id = %recorded.event_id, "the event log did not show a published event in time");
        }
        Err(err) => {
            tracing::debug!(error = %err, "could not check the event log after a publish");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> Result<(), (&'static str, String)> {
        parse(body.as_bytes())
            .map(drop)
            .map_err(|err| (err.code(), err.to_string()))
    }

    #[test]
    fn a_well_formed_request_is_parsed() {
        let parsed = parse(
            br#"{"subject": "hub.h.audit.done", "payload": {"ok": true}, "correlation_id": "c-1"}"#,
        )
        .unwrap();
        assert_eq!(parsed.subject.as_str(), "hub.h.audit.done");
        assert_eq!(parsed.correlation_id.as_deref(), Some("c-1"));
        assert!(parse(br#"{"subject": "hub.h.audit.done", "payload": {}}"#).is_ok());
    }

    #[test]
    fn bad_requests_get_a_code_and_a_reason() {
        let cases = [
            ("", "MALFORMED_JSON", "not valid JSON"),
            ("{\"subject\": ", "MALFORMED_JSON", "not valid JSON"),
            ("[1]", "INVALID_INPUT", "the body must be"),
            (
                "{\"payload\": {}}",
                "INVALID_INPUT",
                "missing field `subject`",
            ),
            (
                "{\"subject\": \"hub.h.a.b\"}",
                "INVALID_INPUT",
                "missing field `payload`",
            ),
            (
                "{\"subject\": 5, \"payload\": {}}",
                "INVALID_INPUT",
                "invalid type",
            ),
            (
                "{\"subject\": \"hub.h.a.*\", \"payload\": {}}",
                "INVALID_INPUT",
                "wildcard",
            ),
            (
                "{\"subject\": \"hub.h\", \"payload\": {}}",
                "INVALID_INPUT",
                "at least 3",
            ),
            (
                "{\"subject\": \"hub.h.a.b\", \"payload\": [1]}",
                "INVALID_INPUT",
                "JSON object",
            ),
            (
                "{\"subject\": \"hub.h.a.b\", \"payload\": \"x\"}",
                "INVALID_INPUT",
                "JSON object",
            ),
            (
                "{\"subject\": \"hub.h.a.b\", \"payload\": {}, \"correlation_id\": \"a b\"}",
                "INVALID_INPUT",
                "correlation_id",
            ),
        ];
        for (body, expected_code, expected_text) in cases {
            let (code, message) = code(body).expect_err(body);
            assert_eq!(code, expected_code, "{body}: {message}");
            assert!(message.contains(expected_text), "{body}: {message}");
        }
    }
}
