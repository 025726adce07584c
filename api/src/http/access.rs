//! Who may talk to the hub, before any handler runs: the `Host` a request
//! names, the `Origin` of a browser page, and the API token.
//!
//! Two deployments (see `docs/SECURITY.md`):
//!
//! - **No token** (a developer's loopback hub): every web page the developer
//!   opens is a potential client. Only requests whose `Host` (and the
//!   authority of an absolute-form URI) name loopback, or a host listed in
//!   `HUB_ALLOWED_HOSTS`, are served; one naming another host, none, or
//!   one that is not text gets 421 (DNS rebinding); a browser request from another origin that could change
//!   something (any method but `GET`, `HEAD` and `OPTIONS`, and every
//!   WebSocket upgrade) is refused with 403 unless its origin is the hub's
//!   own or listed in `HUB_ALLOWED_ORIGINS`; so is a request for a
//!   Server-Sent Events stream ([`asks_for_event_stream`]), which holds a
//!   socket's place like an upgrade. CORS is granted to the listed origins
//!   only.
//! - **A token**: everything needs it except `/health`'s status (see
//!   [`Access::can_read`]); the `Origin` rules above still hold.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth;

/// The access rules of one hub.
#[derive(Debug)]
pub struct Access {
    /// The API token, when one is set (never empty).
    pub token: Option<SecretString>,
    /// Browser origins allowed besides the hub's own (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Whether every origin is allowed (`HUB_ALLOWED_ORIGINS=*`, only with
    /// a token).
    pub any_origin: bool,
    /// `Host` names served besides loopback, when no token is set.
    pub allowed_hosts: Vec<String>,
    /// Whether reads (queries, subscriptions, REST reads, the event
    /// socket) are open without the token (`HUB_PUBLIC_READS`).
    pub public_reads: bool,
}

impl Access {
    /// Whether `headers` carry what changing things needs: the token, when
    /// one is set.
    pub fn can_write(&self, headers: &HeaderMap) -> bool {
        auth::is_authorized(self.token.as_ref(), headers)
    }

    /// Whether `headers` carry what reading needs: the token, when one is
    /// set and reads are not public.
    pub fn can_read(&self, headers: &HeaderMap) -> bool {
        self.public_reads || self.can_write(headers)
    }

    /// Whether the browser origin `origin` may drive the hub served at
    /// `host` (the request's `Host`): its own origin, or a listed one.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        if self.any_origin {
            return true;
        }
        let origin = origin.trim_end_matches('/');
        if self
            .allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return true;
        }
        host.is_some_and(|host| same_origin(origin, host))
    }

    /// Whether a request naming `host` is served (no token: loopback and
    /// the listed hosts only).
    pub fn host_allowed(&self, host: &str) -> bool {
        if self.token.is_some() {
            return true;
        }
        let name = host_name(host);
        is_loopback_name(&name)
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| host_name(allowed).eq_ignore_ascii_case(&name))
    }

    /// The CORS layer: the listed origins (or any, with a token and `*`)
    /// may call the API from a page of their own; others get no CORS
    /// headers at all.
    pub fn cors(&self) -> CorsLayer {
        let origins = if self.any_origin {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.allowed_origins
                    .iter()
                    .filter_map(|origin| HeaderValue::from_str(origin).ok()),
            )
        };
        let correlation = HeaderName::from_static(super::correlation::HEADER);
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                correlation.clone(),
                // Sent by `EventSource` when it reconnects to an SSE stream.
                HeaderName::from_static(crate::rest::sse::LAST_EVENT_ID),
            ])
            .expose_headers([correlation])
            .max_age(std::time::Duration::from_secs(600))
    }
}

/// The host part of a `Host` value or a URL authority, lower case, without
/// the port (`[::1]:9001` gives `[::1]`).
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.to_ascii_lowercase()
}

fn is_loopback_name(name: &str) -> bool {
    matches!(name, "localhost" | "[::1]")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port
/// as the request's `host` (`host[:port]`).
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "80",
        "https" | "wss" => "443",
        _ => return false,
    };
    let with_port = |authority: &str| {
        let authority = authority.to_ascii_lowercase();
        let has_port = if authority.starts_with('[') {
            authority.contains("]:")
        } else {
            authority.contains(':')
        };
        if has_port {
            authority
        } else {
            format!("{authority}:{default_port}")
        }
    };
    with_port(authority) == with_port(host.trim())
}

/// Whether `headers` ask for a WebSocket upgrade.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Whether `headers` ask for Server-Sent Events: an `Accept` that names
/// `text/event-stream` (with a non-zero `q`, if any). A wildcard (`*/*`,
/// `text/*`) does not count: clients such as curl and reqwest send `*/*`
/// by default, and a page's `<img>` or `<script>` sends it without an
/// `Origin`; a client asks for the stream by its name, as `EventSource`
/// does.
pub fn asks_for_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param.split_once('=').is_some_and(|(name, q)| {
                    name.trim().eq_ignore_ascii_case("q")
                        && q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            });
            media.eq_ignore_ascii_case("text/event-stream") && !refused
        })
}

/// Whether a request may change something or open a socket: a method
/// other than `GET`, `HEAD` and `OPTIONS`, a WebSocket upgrade, or a
/// request for an SSE stream.
fn drives_the_hub(request: &Request) -> bool {
    is_websocket_upgrade(request.headers())
        || asks_for_event_stream(request.headers())
        || !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        )
}

/// The `Host` a request names (`Host`, or the authority of an
/// absolute-form URI), and whether every host it names is served: a
/// request naming none, or one that is not text, is served only with a
/// token.
fn request_host(access: &Access, request: &Request) -> (Option<String>, bool) {
    let header = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().map(str::to_owned));
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    let named: Vec<Option<&str>> = header
        .iter()
        .map(|h| h.as_deref().ok())
        .chain(authority.as_deref().map(Some))
        .collect();
    let served = if named.is_empty() {
        access.token.is_some()
    } else {
        named.iter().all(|host| match host {
            Some(host) => access.host_allowed(host),
            None => access.token.is_some(),
        })
    };
    let host = header.and_then(Result::ok).or(authority);
    (host, served)
}

/// Middleware: refuses a request that names a `Host` this hub does not
/// serve (421), and a browser request from a foreign origin that could
/// change something or open a socket (403).
pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let (host, served) = request_host(&access, &request);
    if !served {
        let named = host
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(100)
            .collect::<String>();
        tracing::info!(host = %named, "refused a request for a host this hub does not serve");
        return refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "MISDIRECTED_REQUEST",
            "this hub serves only requests naming loopback host names (localhost, 127.0.0.1, \
             [::1]) and those in HUB_ALLOWED_HOSTS, unless HUB_API_TOKEN is set",
        );
    }
    if drives_the_hub(&request) {
        if let Some(origin) = request
            .headers()
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("").to_owned())
        {
            if !access.origin_allowed(&origin, host.as_deref()) {
                tracing::info!(origin = %origin.chars().take(100).collect::<String>(), "refused a request from a foreign origin");
                return refusal(
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                    "requests from this page's origin are not allowed; list the origin in \
                     HUB_ALLOWED_ORIGINS to allow it",
                );
            }
        }
    }
    next.run(request).await
}

/// A refusal of the access layer, in both error shapes the hub speaks (the
/// REST `error` and the GraphQL `errors`).
pub fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "error": { "code": code, "message": message },
            "errors": [{ "message": message, "extensions": { "code": code } }],
        })),
    )
        .into_response()
}

/// 401 for a request without the token it needs.
pub fn unauthenticated() -> Response {
    let mut response = refusal(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "this hub needs its API token: send the header 'Authorization: Bearer <token>'",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token: Option<&str>, origins: &[&str], hosts: &[&str]) -> Access {
        Access {
            token: token.map(SecretString::from),
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            any_origin: false,
            allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            public_reads: false,
        }
    }

    #[test]
    fn only_loopback_and_listed_hosts_are_served_without_a_token() {
        let open = access(None, &[], &["hub.lan"]);
        for host in [
            "localhost",
            "localhost:9001",
            "127.0.0.1:9001",
            "127.1.2.3",
            "[::1]:9001",
            "HUB.lan:80",
        ] {
            assert!(open.host_allowed(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:9001",
            "localhost.attacker.example",
            "10.0.0.1:9001",
            "[::2]",
        ] {
            assert!(!open.host_allowed(host), "{host}");
        }
        assert!(access(Some("t"), &[], &[]).host_allowed("anything.example"));
    }

    #[test]
    fn an_origin_is_allowed_when_it_is_the_hubs_own_or_listed() {
        let rules = access(None, &["http://localhost:5173"], &[]);
        assert!(rules.origin_allowed("http://127.0.0.1:9001", Some("127.0.0.1:9001")));
        assert!(rules.origin_allowed("http://localhost", Some("localhost:80")));
        assert!(rules.origin_allowed("http://localhost:5173", Some("127.0.0.1:9001")));
        assert!(!rules.origin_allowed("http://localhost:5174", Some("127.0.0.1:9001")));
        assert!(!rules.origin_allowed("https://evil.example", Some("127.0.0.1:9001")));
        assert!(!rules.origin_allowed("null", Some("127.0.0.1:9001")));
        assert!(!rules.origin_allowed("http://127.0.0.1:9002", Some("127.0.0.1:9001")));
        assert!(!rules.origin_allowed("http://127.0.0.1:9001", None));
    }

    #[test]
    fn only_an_accept_naming_the_event_stream_asks_for_one() {
        let asks = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
            }
            asks_for_event_stream(&headers)
        };
        assert!(asks(&["text/event-stream"]));
        assert!(asks(&["Text/Event-Stream"]));
        assert!(asks(&["application/json, text/event-stream;q=0.5"]));
        assert!(asks(&[
            "application/json",
            " text/event-stream ; charset=utf-8"
        ]));
        assert!(!asks(&[]));
        assert!(!asks(&["*/*"]));
        assert!(!asks(&["text/*"]));
        assert!(!asks(&["text/html,application/xhtml+xml,*/*;q=0.8"]));
        assert!(!asks(&["text/event-stream;q=0"]));
        assert!(!asks(&["text/event-stream; Q=0.0"]));
        assert!(!asks(&["text/event-streams"]));
    }

    #[test]
    fn reads_need_the_token_unless_they_are_public() {
        let mut rules = access(Some("s3cret"), &[], &[]);
        let mut headers = HeaderMap::new();
        assert!(!rules.can_read(&headers));
        rules.public_reads = true;
        assert!(rules.can_read(&headers) && !rules.can_write(&headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(rules.can_write(&headers));
    }
}
