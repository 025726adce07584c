//! A loopback hub without a token, seen from the web pages its user
//! browses: requests are sent with the `Origin`, `Host` and `Content-Type`
//! a browser (or a page attacking through one) gives them. Other origins
//! read and change nothing over any transport; an allowed origin (a
//! frontend on another port) can use everything.

use hub_tests::raw::request;
use hub_tests::rest::open_stream;
use hub_tests::ws::{Protocol, WsClient};
use hub_tests::{TestDb, TestHub};
use serde_json::json;

const FRONTEND: &str = "http://localhost:5173";
const EVIL: &str = "https://evil.example";

async fn hub_allowing_the_frontend(db: &TestDb) -> TestHub {
    let mut config = TestHub::config(db.url());
    config.access.allowed_origins = vec![FRONTEND.to_owned()];
    TestHub::start_with(config).await
}

fn addr(hub: &TestHub) -> String {
    hub.url().trim_start_matches("http://").to_owned()
}

async fn project_count(hub: &TestHub) -> i64 {
    let body = hub.graphql("{ projectStats { total } }", json!({})).await;
    body["data"]["projectStats"]["total"]
        .as_i64()
        .unwrap_or_else(|| panic!("projectStats: {body}"))
}

#[tokio::test]
async fn a_page_from_another_origin_cannot_open_either_socket() {
    let db = TestDb::create().await;
    let hub = hub_allowing_the_frontend(&db).await;
    let own = hub.url();
    for protocol in [Protocol::TransportWs, Protocol::LegacyWs] {
        for origin in [EVIL, "null", "http://127.0.0.1:1"] {
            let refused =
                WsClient::try_connect_url(&hub.url(), protocol, &[("Origin", origin)]).await;
            assert_eq!(refused.err(), Some(403), "{protocol:?} from {origin}");
        }
        for origin in [own.as_str(), FRONTEND] {
            let mut client =
                WsClient::connect_url(&hub.url(), protocol, &[("Origin", origin)]).await;
            client.init(json!({})).await.expect("connection_ack");
        }
        // Programs send no Origin.
        let mut client = WsClient::connect_url(&hub.url(), protocol, &[]).await;
        client.init(json!({})).await.expect("connection_ack");
    }
    let refused = open_stream(&hub, "subject=hub.%3E", &[("Origin", EVIL)], None).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(403));
    assert!(
        open_stream(&hub, "subject=hub.%3E", &[("Origin", FRONTEND)], None)
            .await
            .is_ok()
    );
    assert!(open_stream(&hub, "subject=hub.%3E", &[], None)
        .await
        .is_ok());
}

#[tokio::test]
async fn cross_site_form_posts_run_nothing() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let addr = addr(&hub);
    let create = r#"{"query": "mutation { createProject(input: {name: \"Pwned\", path: \"/tmp\"}) { project { id } } }"}"#;
    let batch = format!("[{create}]");
    let publish = format!(
        r#"{{"subject": "hub.{}.audit.pwned", "payload": {{}}}}"#,
        hub.hub_id()
    );
    let shapes: Vec<(&str, Option<&str>, &str)> = vec![
        ("/graphql", Some("text/plain"), create),
        ("/graphql", Some("text/plain;charset=UTF-8"), &batch),
        ("/graphql", Some("multipart/form-data; boundary=x"), create),
        (
            "/graphql",
            Some("application/x-www-form-urlencoded"),
            create,
        ),
        ("/graphql", None, create),
        ("/api/events", Some("text/plain"), &publish),
        ("/api/events", None, &publish),
    ];
    for (path, content_type, body) in &shapes {
        let host = format!("Host: {addr}");
        let mut headers = vec![("Host", addr.as_str())];
        if let Some(content_type) = content_type {
            headers.push(("Content-Type", content_type));
        }
        // As a blind `fetch(..., {mode: "no-cors"})` sends it: with the
        // page's origin, and (from some contexts) without one.
        for origin in [Some(EVIL), None] {
            let mut headers = headers.clone();
            if let Some(origin) = origin {
                headers.push(("Origin", origin));
            }
            let answer = request(&addr, "POST", path, &headers, body).await;
            let expected = if origin.is_some() { 403 } else { 415 };
            assert_eq!(
                answer.status, expected,
                "{path} {content_type:?} from {origin:?} ({host}): {}",
                answer.body
            );
        }
    }
    assert_eq!(
        project_count(&hub).await,
        0,
        "no cross-site request created a project"
    );
    assert_eq!(db.event_count().await, 0, "nothing was recorded");
    // The same request as JSON from the hub's own origin works.
    let own = hub.url();
    let answer = request(
        &addr,
        "POST",
        "/graphql",
        &[
            ("Host", &addr),
            ("Content-Type", "application/json"),
            ("Origin", &own),
        ],
        create,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(project_count(&hub).await, 1);
}

#[tokio::test]
async fn a_rebinding_page_is_refused_with_421_and_listed_hosts_are_served() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.access.allowed_hosts = vec!["hub.lan".to_owned()];
    let hub = TestHub::start_with(config).await;
    let addr = addr(&hub);
    let json = ("Content-Type", "application/json");
    let query = r#"{"query": "{ projects { edges { node { name path } } } }"}"#;
    for host in [
        "attacker.example",
        "attacker.example:9001",
        "127.0.0.1.attacker.example",
    ] {
        for (method, path, body) in [
            ("POST", "/graphql", query),
            ("GET", "/api/events", ""),
            ("GET", "/health", ""),
            ("GET", "/graphql", ""),
        ] {
            let answer = request(&addr, method, path, &[("Host", host), json], body).await;
            assert_eq!(
                answer.status, 421,
                "{method} {path} for {host}: {}",
                answer.body
            );
            assert!(answer.body.contains("HUB_ALLOWED_HOSTS"), "{}", answer.body);
        }
    }
    for host in [
        "localhost:9001",
        "127.0.0.1",
        "[::1]:1234",
        "hub.lan",
        "hub.lan:9001",
    ] {
        let answer = request(&addr, "POST", "/graphql", &[("Host", host), json], query).await;
        assert_eq!(answer.status, 200, "for {host}: {}", answer.body);
    }
}

/// Sends `bytes` as they are; returns the status of the answer.
async fn raw_status(addr: &str, bytes: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("an answer within 10 s")
    .expect("read the answer");
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text}"))
}

#[tokio::test]
async fn a_request_naming_no_host_an_unreadable_one_or_another_in_its_uri_is_refused() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let addr = addr(&hub);
    let refused: [&[u8]; 4] = [
        b"GET /health HTTP/1.0\r\n\r\n",
        b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\xff\r\nConnection: close\r\n\r\n",
        b"GET http://attacker.example/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    ];
    for bytes in refused {
        let status = raw_status(&addr, bytes).await;
        assert_eq!(status, 421, "{}", String::from_utf8_lossy(bytes));
    }
    let served =
        format!("GET http://{addr}/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&addr, served.as_bytes()).await, 200);
}

#[tokio::test]
async fn with_a_token_any_host_is_served_to_whoever_has_the_token() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some("s3cret-token".to_owned().into());
    let hub = TestHub::start_with(config).await;
    let addr = addr(&hub);
    let answer = request(
        &addr,
        "POST",
        "/graphql",
        &[
            ("Host", "hub.example.com"),
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer s3cret-token"),
        ],
        r#"{"query": "{ projectStats { total } }"}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Naming no host at all is fine too.
    assert_eq!(
        raw_status(&addr, b"GET /health HTTP/1.0\r\n\r\n").await,
        200
    );
}

#[tokio::test]
async fn cors_is_granted_to_listed_origins_only() {
    let db = TestDb::create().await;
    let hub = hub_allowing_the_frontend(&db).await;
    let addr = addr(&hub);
    let preflight = |origin: &'static str| {
        let addr = addr.clone();
        async move {
            request(
                &addr,
                "OPTIONS",
                "/graphql",
                &[
                    ("Host", &addr),
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "POST"),
                    (
                        "Access-Control-Request-Headers",
                        "content-type, authorization, x-correlation-id",
                    ),
                ],
                "",
            )
            .await
        }
    };
    let allowed = preflight(FRONTEND).await;
    assert!(allowed.status < 300, "{allowed:?}");
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(FRONTEND)
    );
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap_or("")
        .to_ascii_lowercase();
    for name in ["authorization", "content-type", "x-correlation-id"] {
        assert!(headers.contains(name), "{name} in {headers}");
    }
    assert!(allowed
        .header("access-control-allow-methods")
        .unwrap_or("")
        .contains("POST"));
    let other = preflight(EVIL).await;
    assert!(
        other.header("access-control-allow-origin").is_none(),
        "{other:?}"
    );

    // The frontend's own requests: a mutation, with the correlation id it
    // may read.
    let answer = request(
        &addr,
        "POST",
        "/graphql",
        &[
            ("Host", &addr),
            ("Origin", FRONTEND),
            ("Content-Type", "application/json"),
            ("X-Correlation-ID", "from-vite"),
        ],
        r#"{"query": "mutation { createProject(input: {name: \"From Vite\", path: \"/tmp\"}) { project { id } } }"}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("\"id\""), "{}", answer.body);
    assert_eq!(answer.header("access-control-allow-origin"), Some(FRONTEND));
    assert!(answer
        .header("access-control-expose-headers")
        .unwrap_or("")
        .to_ascii_lowercase()
        .contains("x-correlation-id"));
    assert_eq!(answer.header("x-correlation-id"), Some("from-vite"));

    // And its subscriptions.
    let mut client =
        WsClient::connect_url(&hub.url(), Protocol::TransportWs, &[("Origin", FRONTEND)]).await;
    client.init(json!({})).await.expect("connection_ack");
    client
        .subscribe("live", hub_tests::ws::PROJECT_CHANGED, json!({}))
        .await;
    let seen = client.wait_live_creating_probes("live", &hub).await;
    assert!(seen["projectChanged"]["id"].is_string(), "{seen}");
}

#[tokio::test]
async fn the_console_needs_no_network_and_cannot_be_framed() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let page = hub
        .http()
        .get(format!("{}/graphql", hub.url()))
        .send()
        .await
        .expect("GET /graphql");
    assert_eq!(page.status(), 200);
    let policy = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(
        page.headers()
            .get("x-frame-options")
            .and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    let html = page.text().await.expect("the page");
    // Every script, style and link it loads is the hub's own.
    for attribute in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attribute) {
            let target = &html[i + attribute.len()..];
            assert!(
                target.starts_with('/'),
                "{attribute}{}",
                &target[..40.min(target.len())]
            );
        }
    }
    for asset in ["/graphql/console.js", "/graphql/console.css"] {
        let answer = hub
            .http()
            .get(format!("{}{asset}", hub.url()))
            .send()
            .await
            .expect("GET an asset");
        assert_eq!(answer.status(), 200, "{asset}");
        assert_eq!(
            answer
                .headers()
                .get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff")
        );
        let text = answer.text().await.expect("the asset");
        assert!(
            !text.contains("https://"),
            "{asset} loads nothing from elsewhere"
        );
    }
}
