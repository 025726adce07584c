//! Limits on what a request may ask for: query depth and body size. Each
//! is refused with a clear answer below 500 and changes nothing.

use hub_tests::graphql::{data, first_error};
use hub_tests::ops;
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

#[tokio::test]
async fn a_query_nested_deeper_than_the_limit_is_refused() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(10),
        "} ".repeat(10)
    );
    let answer = hub.graphql_response(&deep, json!({}), &[]).await;
    assert!(!answer.status.is_server_error(), "status {}", answer.status);
    assert!(answer.body["data"].is_null(), "{}", answer.body);
    let message = first_error(&answer.body).message;
    assert!(message.to_lowercase().contains("deep"), "{}", answer.body);

    let shallow = "{ __schema { types { fields { type { ofType { name } } } } } }";
    let answer = hub.graphql_response(shallow, json!({}), &[]).await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
}

/// 40 aliased pages of 1000 events: each page counts its fields once per
/// item, about 160,000 in all.
fn too_complex() -> String {
    let fields: Vec<String> = (0..40)
        .map(|i| format!("e{i}: events(first: 1000) {{ edges {{ node {{ id payload }} }} }}"))
        .collect();
    format!("{{ {} }}", fields.join(" "))
}

#[tokio::test]
async fn a_query_more_complex_than_the_limit_is_refused() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let answer = hub.graphql_response(&too_complex(), json!({}), &[]).await;
    assert!(!answer.status.is_server_error(), "status {}", answer.status);
    assert!(answer.body["data"].is_null(), "{}", answer.body);
    let message = first_error(&answer.body).message;
    assert!(
        message.to_lowercase().contains("complex"),
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), Some("QUERY_TOO_COMPLEX"), "{}", answer.body);
}

#[tokio::test]
async fn errors_raised_by_the_graphql_engine_carry_a_stable_code() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(10),
        "} ".repeat(10)
    );
    let mut without_code = Vec::new();
    for query in [
        deep,
        too_complex(),
        "{ projects { nope } }".into(),
        "{ projects {".into(),
    ] {
        let answer = hub.graphql_response(&query, json!({}), &[]).await;
        assert!(!answer.status.is_server_error(), "status {}", answer.status);
        assert!(
            answer.body["errors"][0].is_object(),
            "refused: {}",
            answer.body
        );
        if answer.code().is_none() {
            let start: String = query.chars().take(40).collect();
            without_code.push(format!("{start}... -> {}", answer.body["errors"][0]));
        }
    }
    assert!(
        without_code.is_empty(),
        "errors without a code:\n{}",
        without_code.join("\n")
    );
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_and_changes_nothing() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let name = "x".repeat(300 * 1024);
    let body = json!({ "query": ops::CREATE, "variables": { "name": name, "path": "/srv/big" } });
    let response = hub
        .http()
        .post(format!("{}/graphql", hub.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(hub_tests::hub::error_code(&answer), Some("INVALID_INPUT"));
    assert!(first_error(&answer).message.contains("limit"), "{answer}");
    assert_eq!(db.event_count().await, 0);
}

/// Sends `body` to `/graphql` with chunked transfer encoding (so without a
/// declared length); returns the status and the response body.
async fn post_chunked(hub: &TestHub, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = hub.url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(16 * 1024) {
        request.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        request.extend(chunk);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

fn oversized_create() -> String {
    json!({ "query": ops::CREATE,
            "variables": { "name": "x".repeat(300 * 1024), "path": "/srv/big" } })
    .to_string()
}

#[tokio::test]
async fn an_oversized_chunked_body_is_refused_without_a_server_error() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let (status, body) = post_chunked(&hub, &oversized_create()).await;
    assert!((400..500).contains(&status), "{status}: {body}");
    assert_eq!(db.event_count().await, 0);

    let small = json!({ "query": "{ projectStats { total } }" }).to_string();
    let (status, body) = post_chunked(&hub, &small).await;
    assert_eq!(status, 200, "a small chunked body is served: {body}");
}

#[tokio::test]
async fn an_oversized_chunked_body_gets_the_same_413_answer_as_a_declared_one() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let (status, body) = post_chunked(&hub, &oversized_create()).await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(body.trim()).unwrap_or_else(|_| panic!("JSON: {body}"));
    assert_eq!(
        hub_tests::hub::error_code(&body),
        Some("INVALID_INPUT"),
        "{body}"
    );
}

#[tokio::test]
async fn introspection_can_be_switched_off_without_affecting_queries() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.graphql.graphql_introspection = false;
    let hub = TestHub::start_with(config).await;
    let answer = hub
        .graphql_response("{ __schema { queryType { name } } }", json!({}), &[])
        .await;
    assert!(!answer.status.is_server_error(), "status {}", answer.status);
    assert!(
        answer.body["data"]["__schema"].is_null(),
        "introspection answered: {}",
        answer.body
    );
    let answer = hub
        .graphql_response("{ projectStats { total } }", json!({}), &[])
        .await;
    assert_eq!(data(&answer.body, "projectStats")["total"], json!(0));

    let open = TestHub::start(db.url()).await;
    let answer = open
        .graphql_response("{ __schema { queryType { name } } }", json!({}), &[])
        .await;
    assert_eq!(
        data(&answer.body, "__schema")["queryType"]["name"],
        json!("Query")
    );
}
