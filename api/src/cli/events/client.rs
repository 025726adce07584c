//! The hub as `hub events` sees it: `GET /api/events` a page at a time and
//! the Server-Sent Events stream `GET /api/events/stream`, with the token.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{RequestBuilder, StatusCode, Url};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use super::error::ClientError;
use super::error::{innermost, refused};

/// The answer header holding the next page's cursor.
const NEXT_CURSOR: &str = "x-next-cursor";
/// How long a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a page may take.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stream may stay silent; the hub sends a keepalive comment
/// well within it.
const READ_TIMEOUT: Duration = Duration::from_secs(90);
/// Most events the REST API gives per page.
pub const MAX_PAGE: u32 = 1000;

/// One event, in the shape of the REST API (the stream's envelope has a
/// few more fields, which are left out so both print alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id.
    pub id: Uuid,
    /// `hub.<hub_id>.<domain>.<action>`.
    pub subject: String,
    /// `ProjectCreated`, `IntegrationEventPublished`, ...
    pub event_type: String,
    /// `Project`, `IntegrationEvent`, ...
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// 1-based sequence within the aggregate.
    pub sequence: i64,
    /// Shared by everything one request caused.
    pub correlation_id: Option<String>,
    /// The message that caused this event.
    pub causation_id: Option<String>,
    /// When it was recorded.
    pub timestamp: DateTime<Utc>,
    /// `{hub_id, service, user}`.
    pub origin: serde_json::Value,
    /// The event's fields.
    pub payload: serde_json::Value,
}

/// Which events to ask for, times already resolved.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// NATS or `LIKE` subject pattern.
    pub subject: Option<String>,
    /// One request's events.
    pub correlation_id: Option<String>,
    /// Only these event types.
    pub event_types: Vec<String>,
    /// Recorded at or after.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before (pages only).
    pub until: Option<DateTime<Utc>>,
}

/// One page of `GET /api/events`.
#[derive(Debug)]
pub struct Page {
    /// Oldest first.
    pub events: Vec<Event>,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
}

/// A running hub, over HTTP.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base: Url,
    /// The URL as shown in messages (credentials redacted).
    shown: String,
    token: Option<SecretString>,
}

impl HubClient {
    /// A client for the hub at `url` that sends `token` (an empty or blank
    /// one is none).
    ///
    /// # Errors
    /// [`ClientError::BadUrl`], or the HTTP client cannot be built.
    pub fn new(url: &str, token: Option<&SecretString>) -> Result<Self, ClientError> {
        let shown = infrastructure::redact::url(url.trim());
        let bad = |why: &str| ClientError::BadUrl {
            url: shown.clone(),
            why: why.to_owned(),
        };
        let mut base = Url::parse(url.trim()).map_err(|err| bad(&err.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad("it may not have a query or a fragment"));
        }
        // A hub behind a path prefix: join relative to the prefix.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|err| ClientError::BadAnswer(format!("the HTTP client: {err}")))?;
        Ok(Self {
            http,
            base,
            shown: shown.trim_end_matches('/').to_owned(),
            token: crate::config::effective_token(token),
        })
    }

    /// The hub's URL as messages show it.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// One page of events: at most `limit` (1-1000), after `cursor`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn page(
        &self,
        query: &EventQuery,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, ClientError> {
        let mut url = self.endpoint("api/events")?;
        let mut pairs = filter_pairs(query);
        if let Some(until) = query.until {
            pairs.push(("until", rfc3339(until)));
        }
        pairs.push(("limit", limit.clamp(1, MAX_PAGE).to_string()));
        if let Some(cursor) = cursor {
            pairs.push(("after", cursor.to_owned()));
        }
        url.query_pairs_mut().extend_pairs(pairs);
        let request = self.http.get(url).timeout(PAGE_TIMEOUT);
        let response = self.send(request).await?;
        let next = response
            .headers()
            .get(NEXT_CURSOR)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|err| self.failed(&err))?;
        let events = serde_json::from_slice(&body).map_err(|err| {
            ClientError::BadAnswer(format!(
                "GET /api/events did not give a list of events ({err})"
            ))
        })?;
        Ok(Page { events, next })
    }

    /// Opens the event stream: from `since` (when given), or right after
    /// the event `last_event_id` (when given; it wins), else live.
    ///
    /// # Errors
    /// See [`ClientError`]; a hub without the stream answers 404 or 406.
    pub async fn stream(
        &self,
        query: &EventQuery,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut url = self.endpoint("api/events/stream")?;
        url.query_pairs_mut().extend_pairs(filter_pairs(query));
        let mut request = self
            .http
            .get(url)
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = self.send(request).await?;
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        if !is_sse {
            return Err(ClientError::BadAnswer(
                "GET /api/events/stream did not answer with Server-Sent Events (is the hub older than this command?)".into(),
            ));
        }
        Ok(response)
    }

    /// The next part of a streamed body, `None` at its end.
    ///
    /// # Errors
    /// The connection broke or went silent.
    pub async fn chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, ClientError> {
        response.chunk().await.map_err(|err| {
            if err.is_timeout() {
                ClientError::Timeout {
                    url: self.shown.clone(),
                    seconds: READ_TIMEOUT.as_secs(),
                }
            } else {
                ClientError::ConnectionLost {
                    url: self.shown.clone(),
                    cause: innermost(&err),
                }
            }
        })
    }

    fn endpoint(&self, path: &str) -> Result<Url, ClientError> {
        self.base.join(path).map_err(|err| ClientError::BadUrl {
            url: self.shown.clone(),
            why: err.to_string(),
        })
    }

    /// Sends `request` with the token; a status other than success is an
    /// error.
    async fn send(&self, mut request: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| {
                    ClientError::BadAnswer("HUB_API_TOKEN is not a valid header value".into())
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let response = request.send().await.map_err(|err| self.failed(&err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthenticated {
                url: self.shown.clone(),
                sent: self.token.is_some(),
            });
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(refused(status, &body))
    }

    /// A transport failure as a sentence, credentials left out.
    fn failed(&self, err: &reqwest::Error) -> ClientError {
        if err.is_timeout() {
            return ClientError::Timeout {
                url: self.shown.clone(),
                seconds: PAGE_TIMEOUT.as_secs(),
            };
        }
        if err.is_decode() {
            return ClientError::BadAnswer(innermost(err));
        }
        ClientError::Unreachable {
            url: self.shown.clone(),
            cause: innermost(err),
        }
    }
}

/// The filters both endpoints take, as query parameters.
fn filter_pairs(query: &EventQuery) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(subject) = &query.subject {
        pairs.push(("subject", subject.clone()));
    }
    if let Some(id) = &query.correlation_id {
        pairs.push(("correlation_id", id.clone()));
    }
    if !query.event_types.is_empty() {
        pairs.push(("type", query.event_types.join(",")));
    }
    if let Some(since) = query.since {
        pairs.push(("since", rfc3339(since)));
    }
    pairs
}

/// What the hub sends as times: RFC 3339, UTC, as precise as needed.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_urls_are_http_with_an_optional_path_prefix() {
        let client = HubClient::new("http://127.0.0.1:9001", None).unwrap();
        assert_eq!(
            client.endpoint("api/events").unwrap().as_str(),
            "http://127.0.0.1:9001/api/events"
        );
        let prefixed = HubClient::new("https://example.com/hub", None).unwrap();
        assert_eq!(
            prefixed.endpoint("api/events").unwrap().as_str(),
            "https://example.com/hub/api/events"
        );
        for bad in ["127.0.0.1:9001", "ftp://x", "http://h/?a=1", "", "http://"] {
            assert!(
                matches!(HubClient::new(bad, None), Err(ClientError::BadUrl { .. })),
                "{bad}"
            );
        }
        let err = HubClient::new("ftp://alice:s3cret@h", None).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn an_empty_token_is_none() {
        let blank = SecretString::from("  ");
        assert!(HubClient::new("http://h", Some(&blank))
            .unwrap()
            .token
            .is_none());
        let token = SecretString::from("t");
        assert!(HubClient::new("http://h", Some(&token))
            .unwrap()
            .token
            .is_some());
    }

    #[test]
    fn filters_go_into_the_query_string() {
        let client = HubClient::new("http://h", None).unwrap();
        let mut url = client.endpoint("api/events").unwrap();
        let query = EventQuery {
            subject: Some("hub.*.audit.>".into()),
            correlation_id: Some("c 1&x".into()),
            event_types: vec!["A".into(), "B".into()],
            since: Some("2026-11-30T14:00:00Z".parse().unwrap()),
            until: None,
        };
        url.query_pairs_mut().extend_pairs(filter_pairs(&query));
        assert_eq!(
            url.query(),
            Some("subject=hub.*.audit.%3E&correlation_id=c+1%26x&type=A%2CB&since=2026-11-30T14%3A00%3A00Z")
        );
    }
}
