//! `GET /health`, `GET /health/nats` and `GET /metrics` as monitoring sees
//! them.

use std::time::Duration;

use hub_tests::rest::{self, open_stream, subject};
use hub_tests::views::HealthStatus;
use hub_tests::{wait_until, TestDb, TestHub};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

const SETTLES: Duration = Duration::from_secs(20);

async fn metrics(hub: &TestHub) -> String {
    let response = hub
        .http()
        .get(format!("{}/metrics", hub.url()))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("a text body")
}

/// The value of the sample `series` (name and labels exactly as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn health_reports_status_database_and_nats_and_health_nats_reports_the_connection() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let report = wait_until("the hub to be healthy", SETTLES, || async {
        let report = hub_tests::jetstream::health_report(&hub).await;
        (report.status == HealthStatus::Healthy).then_some(report)
    })
    .await;
    assert!(report.database.connected, "{report:?}");
    assert!(report.nats.connected, "{report:?}");
    assert!(!report.nats.url.is_empty(), "{report:?}");

    let nats = rest::get(&hub, "/health/nats").await;
    assert_eq!(nats.status, StatusCode::OK);
    assert_eq!(nats.body["connected"], true, "{:?}", nats.body);
    assert_eq!(nats.body["url"], json!(hub_tests::hub::nats_url()));
}

#[tokio::test]
async fn metrics_count_commands_events_requests_and_report_lags_and_subscriptions() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    hub.create_project("Measured", "/srv/measured").await;
    let rejected = hub
        .graphql(
            "mutation($id: ID!) { startProject(id: $id) { project { id } } }",
            json!({ "id": Uuid::new_v4() }),
        )
        .await;
    assert!(!rejected["errors"].is_null(), "{rejected}");
    rest::publish(&hub, &subject(&hub, "audit.done"), json!({})).await;
    let missing = rest::get(&hub, &format!("/api/events/{}", Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let _ = rest::get(&hub, "/no/such/route").await;
    let _socket = open_stream(&hub, "", &[], None).await.expect("upgrade");

    // A loaded NATS server may drop the client for a moment (it then
    // reconnects): the scrape to check is one taken while it is connected.
    let text = wait_until("the relay and read models to catch up", SETTLES, || async {
        let text = metrics(&hub).await;
        (sample(&text, "hub_relay_lag_events") == Some(0.0)
            && sample(&text, "hub_feed_lag_events{consumer=\"event_log\"}") == Some(0.0)
            && sample(&text, "hub_nats_connected") == Some(1.0))
        .then_some(text)
    })
    .await;

    for (series, expected) in [
        (
            "hub_commands_total{command=\"CreateProject\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "hub_commands_total{command=\"StartProject\",outcome=\"rejected\"}",
            1.0,
        ),
        (
            "hub_commands_total{command=\"PublishIntegrationEvent\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "hub_command_duration_seconds_count{command=\"CreateProject\",outcome=\"ok\"}",
            1.0,
        ),
        ("hub_events_appended_total{aggregate_type=\"Project\"}", 1.0),
        (
            "hub_events_appended_total{aggregate_type=\"IntegrationEvent\"}",
            1.0,
        ),
        ("hub_feed_lag_events{consumer=\"projects\"}", 0.0),
        ("hub_feed_lag_events{consumer=\"nats_relay\"}", 0.0),
        ("hub_feed_active{consumer=\"nats_relay\"}", 1.0),
        ("hub_feed_consecutive_failures{consumer=\"projects\"}", 0.0),
        ("hub_feed_parked_events{consumer=\"projects\"}", 0.0),
        ("hub_subscriptions_open", 1.0),
        ("hub_nats_connected", 1.0),
        ("hub_database_up", 1.0),
        (
            "hub_http_requests_total{method=\"POST\",route=\"/api/events\",status=\"201\"}",
            1.0,
        ),
        (
            "hub_http_requests_total{method=\"GET\",route=\"/api/events/{id}\",status=\"404\"}",
            1.0,
        ),
        (
            "hub_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(expected), "{series} in\n{text}");
    }
    assert!(
        sample(
            &text,
            "hub_http_requests_total{method=\"POST\",route=\"/graphql\",status=\"200\"}"
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        sample(&text, "hub_feed_handled_events{consumer=\"event_log\"}").is_some_and(|n| n >= 2.0),
        "{text}"
    );
    let batches = sample(&text, "hub_feed_batches{consumer=\"event_log\"}");
    assert!(batches.is_some_and(|n| n >= 1.0), "{text}");
    assert!(text.contains("hub_command_duration_seconds_bucket{command=\"CreateProject\",outcome=\"ok\",le=\"0.005\"}"));
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(value.parse::<f64>().is_ok(), "not a sample line: {line}");
    }
}
