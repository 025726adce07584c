//! `GET /openapi.json`: the REST API's contract (OpenAPI 3.1), generated
//! from the handlers' own request, answer and error types. The checked-in
//! `openapi.json` at the repository's root must equal it (a test says so).

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::RestError;
use crate::http::access::Access;

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hub REST API",
        description = "The event API of CommandCenter Hub: publish integration events, read the \
            event log, follow live events, and the hub's health and metrics. The hub's projects \
            are managed over GraphQL (`/graphql`, schema in `schema.graphql`).\n\n\
            With `HUB_API_TOKEN` set, every operation needs `Authorization: Bearer <token>` \
            (the event stream also takes `?token=`), except `/health`, which then answers only \
            its `status`. Browsers' requests from origins not in `HUB_ALLOWED_ORIGINS` that \
            could change something are refused (403), and, without a token, requests naming a \
            host that is not loopback or in `HUB_ALLOWED_HOSTS` (421).",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        super::publish::publish,
        super::query::list,
        super::query::one,
        super::stream::stream,
        crate::http::health::health,
        crate::http::health::nats,
        crate::metrics::scrape::scrape,
        document,
    ),
    modifiers(&Refusals),
    tags(
        (name = "events", description = "Integration events and the event log"),
        (name = "health", description = "Whether the hub can do its work"),
        (name = "meta", description = "This document and the metrics"),
    )
)]
struct ApiDoc;

/// Adds the token's security scheme, and to every operation the answers
/// that come before any handler: 403 (a foreign origin), 421 (a host this
/// hub does not serve), 503 (no connection slot left).
struct Refusals;

impl Modify for Refusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The hub's `HUB_API_TOKEN`."))
                    .build(),
            ),
        );
        let refusals = [
            ("403", "A browser page from an origin that is not allowed."),
            ("421", "A host this hub does not serve."),
            ("503", "No connection slot is left; retry."),
        ];
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post];
            for operation in operations.into_iter().flatten() {
                for (status, description) in refusals {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(description)
                                    .content(
                                        "application/json",
                                        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                                    )
                                    .build(),
                            )
                        });
                }
            }
        }
    }
}

/// The document as pretty JSON, with a final newline (as checked in).
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut text = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        text.push('\n');
        text
    })
}

/// Handles `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "meta",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json"),
        (status = 401, description = "A token is configured and was not sent.", body = super::error::ErrorBody),
    ),
    security((), ("token" = []))
)]
pub async fn document(State(access): State<Arc<Access>>, headers: HeaderMap) -> Response {
    if !access.can_read(&headers) {
        return RestError::Unauthenticated.into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}
