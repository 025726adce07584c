//! `POST /graphql`: GraphQL over HTTP, as the GraphQL-over-HTTP spec and
//! its server audits define it.
//!
//! - The body must be `application/json` (415 otherwise: a cross-site form
//!   or a `text/plain` fetch can send anything else without a preflight).
//! - The answer's media type follows `Accept`:
//!   `application/graphql-response+json` when the client lists it first (as
//!   Apollo Client and urql do), `application/json` otherwise (and when
//!   `Accept` is missing or names neither).
//! - A request that never reached execution (unparsable document, failed
//!   validation or limits, variables that do not coerce) answers 400 under
//!   `application/graphql-response+json`, without a `data` entry, and 200
//!   under `application/json`, as the spec asks for legacy clients.
//!   A request executed answers 200 either way, its errors in `errors`.
//! - A body that is not a GraphQL request in JSON answers 400.
//! - `GET /graphql?query=...` runs a query (never a mutation: 405); without
//!   a `query` parameter it serves the console page.
//! - With a token set (and reads not public), a request without it answers
//!   401 before anything runs.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{FromRequest as _, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{routing, Extension, Router};
use serde_json::Value;

use crate::graphql::door::{codes, ExecutionStarted};
use crate::graphql::RequestContext;
use crate::http::access;
use crate::http::correlation::CorrelationId;
use crate::http::{limits, server};
use crate::state::AppState;

mod media;

pub use media::declares_json;
use media::{answer, error, negotiate, not_json, MediaType};

/// `GET /graphql` and `POST /graphql`.
pub fn router() -> Router<AppState> {
    Router::new().route("/graphql", routing::get(get).post(post))
}

/// Handles `POST /graphql`. The media type and the token are checked
/// before the body is read, so a refused client's body is never waited for.
pub async fn post(
    State(state): State<AppState>,
    Extension(CorrelationId(correlation_id)): Extension<CorrelationId>,
    request: Request,
) -> Response {
    let headers = request.headers();
    let media = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    if !declares_json(headers) {
        return not_json();
    }
    if !state.access.can_read(headers) {
        return access::unauthenticated();
    }
    let headers = headers.clone();
    let body = match Bytes::from_request(request, &state).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return limits::too_large(state.limits.max_body_bytes);
        }
        Err(rejection) if server::is_body_timeout(&rejection) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                media,
                "REQUEST_TIMEOUT",
                "the request body did not arrive in time",
            );
        }
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                media,
                codes::INVALID_INPUT,
                &format!(
                    "the request body could not be read: {}",
                    rejection.body_text()
                ),
            );
        }
    };
    let request = match parse(&body) {
        Ok(request) => request,
        Err(message) => {
            return error(
                StatusCode::BAD_REQUEST,
                media,
                codes::INVALID_INPUT,
                &message,
            )
        }
    };
    if let async_graphql::BatchRequest::Batch(operations) = &request {
        if operations.len() > state.limits.max_batch {
            let message = format!(
                "the batch holds {} operations; at most {} are allowed in one request",
                operations.len(),
                state.limits.max_batch
            );
            return error(
                StatusCode::BAD_REQUEST,
                media,
                codes::BATCH_TOO_LARGE,
                &message,
            );
        }
    }
    let context = context(&state, &headers, correlation_id);
    match request {
        async_graphql::BatchRequest::Single(request) => {
            execute(&state, request.data(context), media).await
        }
        async_graphql::BatchRequest::Batch(requests) => {
            let requests = requests
                .into_iter()
                .map(|request| request.data(context.clone()))
                .collect();
            let mut responses = state
                .schema
                .execute_batch(async_graphql::BatchRequest::Batch(requests))
                .await;
            if let async_graphql::BatchResponse::Batch(all) = &mut responses {
                all.iter_mut().for_each(with_codes);
            }
            let body = serde_json::to_value(&responses).unwrap_or(Value::Null);
            answer(StatusCode::OK, media, &body)
        }
    }
}

/// The request's context: who asks, and what they may do.
fn context(state: &AppState, headers: &HeaderMap, correlation_id: String) -> RequestContext {
    let authorized = state.access.can_write(headers);
    RequestContext {
        correlation_id,
        authorized,
        may_read: true,
        user: if state.access.token.is_some() && authorized {
            "token".to_owned()
        } else {
            "anonymous".to_owned()
        },
    }
}

/// Runs one operation and answers it as `media` says (see the module docs).
async fn execute(state: &AppState, request: async_graphql::Request, media: MediaType) -> Response {
    let started = ExecutionStarted::default();
    let mut response = state.schema.execute(request.data(started.clone())).await;
    with_codes(&mut response);
    let rejected = response.is_err() && !started.0.load(Ordering::Acquire);
    let mut body = serde_json::to_value(&response).unwrap_or(Value::Null);
    let status = if rejected && media == MediaType::GraphqlResponseJson {
        // Nothing ran: there is no data, not even null.
        if let Value::Object(fields) = &mut body {
            fields.remove("data");
        }
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    answer(status, media, &body)
}

/// The parameters of `GET /graphql?query=...`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    /// JSON text.
    variables: Option<String>,
    /// JSON text.
    extensions: Option<String>,
}

/// Handles `GET /graphql`: with a `query` parameter, runs that query (never
/// a mutation: 405); without one, serves the console page.
pub async fn get(
    State(state): State<AppState>,
    Extension(CorrelationId(correlation_id)): Extension<CorrelationId>,
    headers: HeaderMap,
    params: Result<axum::extract::Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let media = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let params = match params {
        Ok(axum::extract::Query(params)) => params,
        Err(rejection) => {
            let message = format!("the query string is malformed: {}", rejection.body_text());
            return error(
                StatusCode::BAD_REQUEST,
                media,
                codes::INVALID_INPUT,
                &message,
            );
        }
    };
    let Some(query) = params.query else {
        return super::console::page().await;
    };
    if !state.access.can_read(&headers) {
        return access::unauthenticated();
    }
    let json_parameter = |name: &str, text: Option<String>| -> Result<Value, String> {
        text.map_or(Ok(Value::Null), |text| {
            serde_json::from_str(&text)
                .map_err(|err| format!("the {name} parameter is not JSON: {err}"))
        })
    };
    let (variables, extensions) = match (
        json_parameter("variables", params.variables),
        json_parameter("extensions", params.extensions),
    ) {
        (Ok(variables), Ok(extensions)) => (variables, extensions),
        (Err(message), _) | (_, Err(message)) => {
            return error(
                StatusCode::BAD_REQUEST,
                media,
                codes::INVALID_INPUT,
                &message,
            )
        }
    };
    let body = serde_json::json!({
        "query": query,
        "operationName": params.operation_name,
        "variables": variables,
        "extensions": extensions,
    });
    let request = match parse(body.to_string().as_bytes()) {
        Ok(async_graphql::BatchRequest::Single(request)) => request,
        Ok(async_graphql::BatchRequest::Batch(_)) => unreachable!("built as one request"),
        Err(message) => {
            return error(
                StatusCode::BAD_REQUEST,
                media,
                codes::INVALID_INPUT,
                &message,
            )
        }
    };
    if is_mutation(&request) {
        let mut refused = error(
            StatusCode::METHOD_NOT_ALLOWED,
            media,
            "METHOD_NOT_ALLOWED",
            "mutations run only with POST",
        );
        refused
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return refused;
    }
    let request = request.data(context(&state, &headers, correlation_id));
    execute(&state, request, media).await
}

/// Whether the operation `request` runs is a mutation (a document that
/// does not parse is not: the engine refuses it).
fn is_mutation(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::OperationType;
    if crate::graphql::door::check_text_nesting(&request.query).is_err() {
        return false;
    }
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let name = request.operation_name.as_deref();
    document
        .operations
        .iter()
        .any(|(operation_name, operation)| {
            operation.node.ty == OperationType::Mutation
                && (name.is_none() || operation_name.map(|n| n.as_str()) == name)
        })
}

/// Reads the body as one GraphQL request or a batch of them: objects with
/// a string `query`; `null` for `variables`, `operationName` or
/// `extensions` means absent.
fn parse(body: &[u8]) -> Result<async_graphql::BatchRequest, String> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|err| format!("the request body is not JSON: {err}"))?;
    let check = |request: &mut Value| -> Result<(), String> {
        let Value::Object(fields) = request else {
            return Err("a GraphQL request is a JSON object".to_owned());
        };
        fields.retain(|name, value| {
            !(value.is_null()
                && matches!(name.as_str(), "variables" | "operationName" | "extensions"))
        });
        if !fields.get("query").is_some_and(Value::is_string) {
            return Err("a GraphQL request needs a string `query`".to_owned());
        }
        Ok(())
    };
    match &mut value {
        Value::Array(requests) => requests.iter_mut().try_for_each(check)?,
        request => check(request)?,
    }
    serde_json::from_value(value)
        .map_err(|err| format!("the request body is not a GraphQL request: {err}"))
}

/// Errors raised by the GraphQL engine itself (syntax, unknown fields,
/// argument types) carry no code; they are all problems with the request,
/// so they get INVALID_INPUT.
fn with_codes(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", codes::INVALID_INPUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_parameters_mean_absent() {
        let parsed = parse(
            br#"{"query": "{ a }", "variables": null, "operationName": null, "extensions": null}"#,
        );
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(parse(br#"{"notquery": "{ a }"}"#).is_err());
        assert!(parse(br#"{"query": "{ a }", "variables": "x"}"#).is_err());
        assert!(parse(br#"[{"query": "{ a }", "variables": null}]"#).is_ok());
    }
}
