//! A network deployment with `HUB_API_TOKEN`: without the token nothing
//! answers but `/health`'s status; `HUB_PUBLIC_READS` opens reads only; an
//! empty token is no token; URLs with credentials are never shown.

use std::time::Duration;

use hub_tests::raw::request;
use hub_tests::rest::open_stream;
use hub_tests::ws::{Incoming, Protocol, WsClient};
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

const TOKEN: &str = "t0ken-6d1f0b";

async fn hub_with_token(db: &TestDb, public_reads: bool) -> TestHub {
    let mut config = TestHub::config(db.url());
    config.api_token = Some(TOKEN.to_owned().into());
    config.access.public_reads = public_reads;
    TestHub::start_with(config).await
}

fn addr(hub: &TestHub) -> String {
    hub.url().trim_start_matches("http://").to_owned()
}

/// `method path` with an optional bearer token; status and body.
async fn call(
    hub: &TestHub,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let addr = addr(hub);
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Host", addr.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    let answer = request(&addr, method, path, &headers, body).await;
    (answer.status, answer.body)
}

const QUERY: &str = r#"{"query": "{ projects { edges { node { name path } } } }"}"#;
const MUTATION: &str = r#"{"query": "mutation { createProject(input: {name: \"Secret Project\", path: \"/srv/secret\"}) { project { id } } }"}"#;

#[tokio::test]
async fn with_a_token_everything_needs_it_but_the_health_status() {
    let db = TestDb::create().await;
    let hub = hub_with_token(&db, false).await;
    let (status, body) = call(&hub, "POST", "/graphql", MUTATION, Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let event = hub_tests::rest::publish_with_token(&hub, TOKEN).await;

    for (method, path, body) in [
        ("POST", "/graphql", QUERY),
        ("POST", "/graphql", MUTATION),
        ("GET", "/api/events", ""),
        ("GET", &format!("/api/events/{event}") as &str, ""),
        ("GET", "/metrics", ""),
        ("GET", "/health/nats", ""),
        ("GET", "/openapi.json", ""),
    ] {
        for token in [None, Some("wrong"), Some("")] {
            let (status, answer) = call(&hub, method, path, body, token).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {answer}");
            assert!(!answer.contains("Secret Project") && !answer.contains("/srv/secret"));
            assert!(answer.contains("UNAUTHENTICATED"), "{answer}");
        }
        let (status, answer) = call(&hub, method, path, body, Some(TOKEN)).await;
        assert!(
            status < 300,
            "{method} {path} with the token: {status} {answer}"
        );
    }

    // /health: only the status without the token, everything with it.
    let (status, bare) = call(&hub, "GET", "/health", "", None).await;
    assert_eq!(status, 200);
    let bare: Value = serde_json::from_str(&bare).expect("JSON");
    assert_eq!(bare.as_object().map(|o| o.len()), Some(1), "{bare}");
    assert!(bare["status"].is_string());
    let (_, full) = call(&hub, "GET", "/health", "", Some(TOKEN)).await;
    let full: Value = serde_json::from_str(&full).expect("JSON");
    assert!(full["consumers"]["projects"].is_object(), "{full}");

    // The event socket and the GraphQL socket.
    let refused = open_stream(&hub, "subject=hub.%3E", &[], None).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(401));
    let refused = open_stream(&hub, "subject=hub.%3E&token=", &[], None).await;
    assert_eq!(
        refused.err().map(|(status, _)| status),
        Some(401),
        "an empty token"
    );
    assert!(
        open_stream(&hub, &format!("subject=hub.%3E&token={TOKEN}"), &[], None)
            .await
            .is_ok()
    );
    for payload in [
        json!({}),
        json!({"token": ""}),
        json!({"authToken": "wrong"}),
    ] {
        let mut client = WsClient::connect(&hub, Protocol::TransportWs).await;
        let refused = client.init(payload.clone()).await.expect_err("refused");
        assert!(
            matches!(&refused, Incoming::Closed(Some((4403, reason))) if reason.contains("token")),
            "{payload}: {refused:?}"
        );
    }
    let mut client = WsClient::connect(&hub, Protocol::TransportWs).await;
    client
        .init(json!({ "authToken": TOKEN }))
        .await
        .expect("connection_ack");
}

#[tokio::test]
async fn a_subscribe_before_connection_init_is_closed_4401() {
    let db = TestDb::create().await;
    let hub = hub_with_token(&db, false).await;
    let mut client = WsClient::connect(&hub, Protocol::TransportWs).await;
    client
        .subscribe("early", "subscription { events { id } }", json!({}))
        .await;
    let closed = client.next(Duration::from_secs(10)).await;
    assert!(
        matches!(&closed, Incoming::Closed(Some((4401, _)))),
        "{closed:?}"
    );
}

#[tokio::test]
async fn public_reads_open_queries_and_reads_but_nothing_that_changes_or_administers() {
    let db = TestDb::create().await;
    let hub = hub_with_token(&db, true).await;
    let (status, body) = call(&hub, "POST", "/graphql", QUERY, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("errors"), "{body}");
    let (status, body) = call(&hub, "POST", "/graphql", MUTATION, None).await;
    assert_eq!(status, 200);
    assert!(body.contains("UNAUTHENTICATED"), "{body}");
    let (status, _) = call(&hub, "GET", "/api/events", "", None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&hub, "GET", "/metrics", "", None).await;
    assert_eq!(status, 401, "metrics stay behind the token");
    let (_, admin) = call(
        &hub,
        "POST",
        "/graphql",
        r#"{"query": "{ projections { name } }"}"#,
        None,
    )
    .await;
    assert!(admin.contains("UNAUTHENTICATED"), "{admin}");
    // Subscriptions are reads.
    let mut client = WsClient::connect(&hub, Protocol::TransportWs).await;
    client.init(json!({})).await.expect("connection_ack");
}

#[tokio::test]
async fn an_empty_token_is_no_token() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.api_token = Some("  ".to_owned().into());
    let open = TestHub::start_with(config.clone()).await;
    let (status, body) = call(&open, "POST", "/graphql", MUTATION, None).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("\"id\""),
        "an empty token does not lock anything: {body}"
    );
    open.stop().await;

    // It does not pass for a token where one is needed either.
    config.bind = "0.0.0.0:0".parse().unwrap();
    let refused = api::App::build(&config).await.err().expect("refused");
    let message = refused.to_string();
    assert!(
        message.contains("HUB_API_TOKEN") && message.contains("empty"),
        "{message}"
    );

    // As `.env.example` ships it, through the real binary.
    let hub = hub_tests::process::cargo_executable(&["-p", "api", "--bin", "hub"]).await;
    let output = std::process::Command::new(hub)
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("HUB_API_TOKEN", "")
        .env("HUB_BIND", "0.0.0.0:0")
        .env_remove("HUB_INSECURE")
        .output()
        .expect("run hub serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to serve on 0.0.0.0"), "{stderr}");
}

#[tokio::test]
async fn credentials_in_urls_are_never_shown() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    // The shared test server has no authorization: it ignores them.
    config.nats.nats_url = hub_tests::hub::nats_url().replace("nats://", "nats://alice:s3cretpw@");
    let hub = TestHub::start_with(config).await;
    for path in ["/health", "/health/nats"] {
        let (status, body) = call(&hub, "GET", path, "", None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(!body.contains("s3cretpw"), "{path}: {body}");
        assert!(body.contains("nats://alice:***@"), "{path}: {body}");
    }
}
