//! Requests that used to abort the process or exhaust it, replayed against
//! a real `hub` process: each is refused with its own code, and afterwards
//! the same process still serves (same pid, `/health` within a second).

use std::time::Duration;

use futures::future::join_all;
use hub_tests::db::lock_table;
use hub_tests::graphql::{data, first_error};
use hub_tests::hub::error_code;
use hub_tests::spawned::SpawnedHub;
use hub_tests::ws::{Incoming, Protocol, WsClient};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// `{ __typename(x: [[[...1...]]]) }`, `depth` lists deep.
fn nested_argument(depth: usize) -> String {
    format!(
        "{{ __typename(x: {}1{}) }}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

#[tokio::test]
async fn a_deeply_nested_argument_is_refused_over_http_and_the_process_keeps_serving() {
    let mut hub = SpawnedHub::start("nesting", &[]).await;
    for depth in [2_500, 100_000] {
        let answer = hub
            .graphql_body(&json!({ "query": nested_argument(depth) }))
            .await;
        assert!(!answer.status.is_server_error(), "{}", answer.status);
        assert_eq!(
            error_code(&answer.body),
            Some("INVALID_INPUT"),
            "{}",
            answer.body
        );
        let message = first_error(&answer.body).message;
        assert!(message.contains("nested more than"), "{message}");
        hub.assert_alive().await;
    }
    // Just inside the bound, the document is parsed and runs, without harm.
    let answer = hub
        .graphql_body(&json!({ "query": nested_argument(60) }))
        .await;
    assert_eq!(data(&answer.body, "__typename"), "Query");
    hub.assert_alive().await;
}

#[tokio::test]
async fn deeply_nested_variables_are_refused() {
    let mut hub = SpawnedHub::start("variables", &[]).await;
    let mut value = json!("x");
    for _ in 0..100 {
        value = json!([value]);
    }
    let answer = hub
        .graphql(
            "query($v: [String]) { projects(search: \"a\") { edges { cursor } } }",
            json!({ "v": value }),
        )
        .await;
    assert_eq!(
        error_code(&answer.body),
        Some("INVALID_INPUT"),
        "{}",
        answer.body
    );
    // Deeper than the JSON parser's own bound: the body itself is refused.
    // Written as text: a value this deep would overflow this test's stack.
    let body = format!(
        "{{\"query\": \"{{ __typename }}\", \"variables\": {{\"v\": {}\"x\"{}}}}}",
        "{\"k\": ".repeat(5_000),
        "}".repeat(5_000)
    );
    let answer = hub
        .http()
        .post(format!("{}/graphql", hub.url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    hub.assert_alive().await;
}

#[tokio::test]
async fn a_deeply_nested_subscription_is_refused_and_the_socket_stays_usable() {
    let mut hub = SpawnedHub::start("ws-nesting", &[]).await;
    for protocol in [Protocol::TransportWs, Protocol::LegacyWs] {
        let mut client = WsClient::connect_url(&hub.url(), protocol, &[]).await;
        client.init(json!({})).await.expect("connection_ack");
        let deep = format!(
            "subscription {{ events(filter: {{eventTypes: {}\"x\"{}}}) {{ id }} }}",
            "[".repeat(3_000),
            "]".repeat(3_000)
        );
        client.subscribe("deep", &deep, json!({})).await;
        let refused = client.next(Duration::from_secs(10)).await;
        let payload = match refused {
            Incoming::Next { payload, .. } | Incoming::Error { payload, .. } => payload,
            other => panic!("expected an error for the deep subscription, got {other:?}"),
        };
        let errors = payload.get("errors").unwrap_or(&payload);
        let first = if errors.is_array() {
            &errors[0]
        } else {
            errors
        };
        assert_eq!(
            first["extensions"]["code"].as_str(),
            Some("INVALID_INPUT"),
            "{payload}"
        );
        // The same socket still serves a normal subscription.
        client
            .subscribe(
                "fine",
                "subscription { events { id eventType } }",
                json!({}),
            )
            .await;
        let delivered = hub.wait_live(&mut client, "fine").await;
        assert_eq!(
            data(&delivered, "events")["eventType"],
            "ProjectCreated",
            "{delivered}"
        );
        hub.assert_alive().await;
    }
}

/// `levels` fragments, each spreading the previous one twice: 2^levels
/// fields once expanded, in under a kilobyte.
fn fragment_bomb(levels: usize) -> String {
    let mut query = format!("query {{ ...F{levels} }}\nfragment F1 on Query {{ __typename }}\n");
    for level in 2..=levels {
        let previous = level - 1;
        query.push_str(&format!(
            "fragment F{level} on Query {{ ...F{previous} ...F{previous} }}\n"
        ));
    }
    query
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_before_it_is_expanded() {
    let mut hub = SpawnedHub::start("fragments", &[]).await;
    // 2^30 fields: expanded even once (as the engine's own recursion-depth
    // check did) it keeps a core busy for a minute. Three at once, as the
    // probe sent them, to occupy every worker.
    let bombs: Vec<Value> = (0..3)
        .map(|_| json!({ "query": fragment_bomb(31) }))
        .collect();
    let answers = join_all(bombs.iter().map(|bomb| hub.graphql_body(bomb))).await;
    for answer in answers {
        assert_eq!(
            error_code(&answer.body),
            Some("QUERY_TOO_LARGE"),
            "{}",
            answer.body
        );
    }
    hub.assert_alive().await;
    // A small one is fine.
    let answer = hub
        .graphql_body(&json!({ "query": fragment_bomb(4) }))
        .await;
    assert_eq!(data(&answer.body, "__typename"), "Query");
}

#[tokio::test]
async fn fragments_no_operation_uses_are_refused_before_the_engine_walks_them() {
    let mut hub = SpawnedHub::start("unused-fragments", &[]).await;
    // A chain of 5,000 unused fragments: the engine's validation follows it
    // by recursion (it overflowed the stack and aborted the process).
    let mut chain = String::from("{ __typename }\nfragment f0 on Query { __typename }\n");
    for i in 1..5_000 {
        chain.push_str(&format!("fragment f{i} on Query {{ ...f{} }}\n", i - 1));
    }
    // One huge fragment spread by thousands of unused ones (under the body
    // limit): seconds of CPU in validation.
    let mut wide = format!(
        "{{ __typename }}\nfragment B on Query {{ {} }}\n",
        "__typename ".repeat(10_000)
    );
    for i in 0..3_000 {
        wide.push_str(&format!("fragment w{i} on Query {{ ...B }}\n"));
    }
    for query in [chain, wide] {
        assert!(query.len() < 256 * 1024, "under the body limit");
        let answer = hub.graphql_body(&json!({ "query": query })).await;
        assert!(!answer.status.is_server_error(), "{}", answer.status);
        assert!(error_code(&answer.body).is_some(), "{}", answer.body);
        hub.assert_alive().await;
    }
}

#[tokio::test]
async fn too_many_fields_are_refused_but_a_frontends_queries_pass() {
    let hub = SpawnedHub::start("fields", &[]).await;
    let aliases: Vec<String> = (0..1100)
        .map(|i| format!("s{i}: projectStats {{ total }}"))
        .collect();
    let answer = hub
        .graphql(&format!("{{ {} }}", aliases.join(" ")), json!({}))
        .await;
    assert_eq!(
        error_code(&answer.body),
        Some("QUERY_TOO_LARGE"),
        "{}",
        answer.body
    );

    // Full pages of everything a frontend shows.
    hub.create_project("board").await;
    for (query, variables) in [
        (
            "{ projects(first: 1000) { pageInfo { hasNextPage endCursor } edges { cursor node { \
               id name slug path status version ports { backend frontend postgres redis } \
               createdAt updatedAt lastStartedAt lastStoppedAt lastError } } } }",
            json!({}),
        ),
        (hub_tests::ops::EVENTS, json!({ "first": 1000 })),
        (
            "{ projectStats { total stopped starting running stopping errors deleted } \
               projects(first: 100) { edges { node { id name status history(first: 20) { id eventType } } } } }",
            json!({}),
        ),
    ] {
        let answer = hub.graphql(query, variables).await;
        assert!(answer.body["errors"].is_null(), "{query}: {}", answer.body);
    }
}

#[tokio::test]
async fn a_batch_longer_than_the_limit_is_refused_whole() {
    let mut hub = SpawnedHub::start("batch", &[("HUB_GRAPHQL_MAX_BATCH", "10")]).await;
    let operation = json!({ "query": "{ projectStats { total } }" });
    let allowed = hub.graphql_body(&json!(vec![operation.clone(); 10])).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(allowed.body.as_array().map(Vec::len), Some(10));
    let refused = hub.graphql_body(&json!(vec![operation; 2_500])).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_code(&refused.body),
        Some("BATCH_TOO_LARGE"),
        "{}",
        refused.body
    );
    hub.assert_alive().await;
}

#[tokio::test]
async fn a_query_past_its_deadline_is_stopped_with_its_own_code() {
    let mut hub = SpawnedHub::start("deadline", &[("HUB_GRAPHQL_TIMEOUT_MS", "500")]).await;
    hub.create_project("slow").await;
    // Another session holds the read model's table: the query cannot finish.
    let pool = hub.db.pool().await;
    let blocker = lock_table(&pool, "projects").await;
    let answer = hub
        .graphql("{ projects { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(
        error_code(&answer.body),
        Some("QUERY_TIMEOUT"),
        "{}",
        answer.body
    );
    blocker.rollback().await.expect("release the lock");
    let answer = hub
        .graphql("{ projects { edges { node { name } } } }", json!({}))
        .await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
    hub.assert_alive().await;
}

/// The next message for subscription `id`, skipping others.
async fn answer_for(client: &mut WsClient, id: &str) -> Incoming {
    loop {
        let message = client.next(Duration::from_secs(10)).await;
        match &message {
            Incoming::Next { id: got, .. }
            | Incoming::Error { id: got, .. }
            | Incoming::Complete { id: got }
                if got == id =>
            {
                return message
            }
            Incoming::Closed(_) => panic!("the socket closed: {message:?}"),
            _ => continue,
        }
    }
}

fn refused_for_too_many(message: &Incoming) -> bool {
    matches!(message, Incoming::Next { payload, .. } | Incoming::Error { payload, .. }
        if payload.to_string().contains("TOO_MANY_SUBSCRIPTIONS"))
}

#[tokio::test]
async fn subscriptions_are_capped_per_socket_and_per_process_and_the_socket_stays_usable() {
    let mut hub = SpawnedHub::start(
        "subscriptions",
        &[
            ("HUB_WS_MAX_SUBSCRIPTIONS", "2"),
            ("HUB_MAX_SUBSCRIPTIONS", "3"),
        ],
    )
    .await;
    let query = "subscription { events { id } }";
    let mut first = WsClient::connect_url(&hub.url(), Protocol::TransportWs, &[]).await;
    first.init(json!({})).await.expect("connection_ack");
    first.subscribe("a", query, json!({})).await;
    first.subscribe("b", query, json!({})).await;
    first.subscribe("c", query, json!({})).await;
    let third = answer_for(&mut first, "c").await;
    assert!(refused_for_too_many(&third), "{third:?}");
    // Completing one frees its place on the socket.
    first.send(json!({ "type": "complete", "id": "a" })).await;
    first.subscribe("d", query, json!({})).await;
    hub.wait_live(&mut first, "d").await;

    // The process holds 2; a second socket gets one more, then no more.
    let mut second = WsClient::connect_url(&hub.url(), Protocol::TransportWs, &[]).await;
    second.init(json!({})).await.expect("connection_ack");
    second.subscribe("x", query, json!({})).await;
    second.subscribe("y", query, json!({})).await;
    let refused = answer_for(&mut second, "y").await;
    assert!(refused_for_too_many(&refused), "{refused:?}");
    hub.wait_live(&mut second, "x").await;
    hub.assert_alive().await;
}

#[tokio::test]
async fn invented_methods_and_paths_do_not_grow_the_metrics() {
    let mut hub = SpawnedHub::start("labels", &[]).await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("X{i}FOO").as_bytes()).unwrap();
        let answer = hub
            .http()
            .request(method, format!("{}/nowhere/{i}", hub.url()))
            .send()
            .await
            .expect("send an invented method");
        assert!(!answer.status().is_server_error());
    }
    let metrics = hub
        .http()
        .get(format!("{}/metrics", hub.url()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics");
    assert!(
        !metrics.contains("X1FOO"),
        "an invented method became a label"
    );
    assert!(
        !metrics.contains("/nowhere"),
        "an unknown path became a label"
    );
    assert!(
        metrics.contains("method=\"other\",route=\"unmatched\""),
        "{metrics}"
    );
    hub.assert_alive().await;
}

#[tokio::test]
async fn a_nul_character_in_a_search_is_invalid_input_not_internal() {
    let mut hub = SpawnedHub::start("nul", &[]).await;
    let answer = hub
        .graphql(
            "query($s: String) { projects(search: $s) { edges { cursor } } }",
            json!({ "s": "a\u{0}b" }),
        )
        .await;
    assert_eq!(
        error_code(&answer.body),
        Some("INVALID_INPUT"),
        "{}",
        answer.body
    );
    let answer = hub
        .http()
        .get(format!("{}/api/events?correlation_id=a%00b", hub.url()))
        .send()
        .await
        .expect("GET /api/events");
    assert!(answer.status().is_client_error(), "{}", answer.status());
    hub.assert_alive().await;
}
