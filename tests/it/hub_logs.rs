//! The real `hub` binary with `HUB_LOG_FORMAT=json`: every log line is a
//! JSON object, a request's lines carry its correlation id, and the API
//! token never appears in the logs.

use std::process::Stdio;
use std::time::Duration;

use hub_tests::jetstream::DeleteStreamOnDrop;
use hub_tests::process::{cargo_executable, signal, Output, Signal};
use hub_tests::TestDb;
use infrastructure::nats::StreamSettings;
use serde_json::{json, Value};
use uuid::Uuid;

const STARTS: Duration = Duration::from_secs(60);
const TOKEN: &str = "tok-9f8e7d6c-never-in-logs";

/// Whether `value` holds `"correlation_id": id` at any depth (the request
/// span's fields are nested under `span` and `spans`).
fn carries_correlation(value: &Value, id: &str) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, v)| (key == "correlation_id" && v == id) || carries_correlation(v, id)),
        Value::Array(items) => items.iter().any(|v| carries_correlation(v, id)),
        _ => false,
    }
}

#[tokio::test]
async fn json_logs_carry_the_correlation_id_and_never_the_token() {
    let db = TestDb::create().await;
    let hub_id = format!("logs-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let nats_url = hub_tests::hub::nats_url();
    let _stream = DeleteStreamOnDrop {
        url: nats_url.clone(),
        stream: StreamSettings::default_name(&hub_id),
    };
    let hub = cargo_executable(&["-p", "api", "--bin", "hub"]).await;
    let mut child = tokio::process::Command::new(hub)
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("NATS_URL", &nats_url)
        .env("HUB_ID", &hub_id)
        .env("HUB_BIND", "127.0.0.1:0")
        .env("HUB_API_TOKEN", TOKEN)
        .env("HUB_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the hub");
    let output = Output::collect(&mut child);
    let serving = output
        .wait_for("the hub to serve", STARTS, |line| {
            line.contains("hub is serving")
        })
        .await;
    let serving: Value = serde_json::from_str(&serving).expect("the start line is JSON");
    let addr = serving["addr"]
        .as_str()
        .expect("the start line names the address");
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let published = http
        .post(format!("{base}/api/events"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-correlation-id", "log-corr-1")
        .json(&json!({ "subject": format!("hub.{hub_id}.audit.done"), "payload": {"ok": true} }))
        .send()
        .await
        .expect("POST /api/events");
    assert_eq!(published.status(), 201);
    let refused = http
        .post(format!("{base}/api/events"))
        .header("authorization", "Bearer wrong-token")
        .json(&json!({ "subject": format!("hub.{hub_id}.audit.done"), "payload": {} }))
        .send()
        .await
        .expect("POST /api/events");
    assert_eq!(refused.status(), 401);
    let _ = http
        .get(format!("{base}/api/events/stream?token={TOKEN}"))
        .send()
        .await
        .expect("GET /api/events/stream");

    let line = output
        .wait_for("the publish to be logged", STARTS, |line| {
            line.contains("integration event published")
        })
        .await;
    let logged: Value = serde_json::from_str(&line).expect("a JSON line");
    assert!(carries_correlation(&logged, "log-corr-1"), "{logged}");
    assert_eq!(logged["span"]["name"], "request", "{logged}");
    assert_eq!(logged["span"]["correlation_id"], "log-corr-1", "{logged}");
    assert_eq!(logged["level"], "INFO", "{logged}");

    signal(&child, Signal::Term);
    let status = tokio::time::timeout(STARTS, child.wait())
        .await
        .expect("the hub stops")
        .expect("wait for the hub");
    assert!(status.success(), "exit status {status:?}");
    // The output pipes close with the process; give the readers a moment.
    output
        .wait_for("the shutdown to be logged", STARTS, |line| {
            line.contains("shutting down")
        })
        .await;

    let lines = output.lines();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
    assert!(
        !output.text().contains(TOKEN),
        "the token appears in the logs:\n{}",
        output.text()
    );
}
