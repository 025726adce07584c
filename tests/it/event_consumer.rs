//! `examples/event_consumer.rs`, run as a process: it prints an event
//! published through the REST API, and on SIGTERM or SIGINT it stops
//! cleanly, printing the count.

use std::process::Stdio;
use std::time::Duration;

use hub_tests::process::{cargo_executable, signal, Output, Signal};
use hub_tests::rest::{self, subject};
use hub_tests::{TestDb, TestHub};
use serde_json::json;

const ARRIVES: Duration = Duration::from_secs(20);

async fn consumer_prints_and_stops_on(stop_with: Signal) {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let consumer = cargo_executable(&["-p", "api", "--example", "event_consumer"]).await;
    let pattern = format!("hub.{}.>", hub.hub_id());
    let mut child = tokio::process::Command::new(consumer)
        .args([
            "--nats-url",
            &hub_tests::hub::nats_url(),
            "--subject",
            &pattern,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the example consumer");
    let output = Output::collect(&mut child);
    output
        .wait_for("the consumer to subscribe", ARRIVES, |line| {
            line.starts_with("subscribed to ")
        })
        .await;

    let on = subject(&hub, "audit.security.completed");
    let published = rest::publish(&hub, &on, json!({"status": "passed"})).await;
    let event_id = published["event_id"].as_str().unwrap().to_owned();
    let line = output
        .wait_for("the consumer to print the event", ARRIVES, |line| {
            line.contains(&event_id)
        })
        .await;
    let (printed_subject, envelope) = line.split_once(' ').expect("subject, then the envelope");
    assert_eq!(printed_subject, on);
    let envelope: serde_json::Value = serde_json::from_str(envelope).expect("the envelope is JSON");
    assert_eq!(envelope["payload"], json!({"status": "passed"}));
    assert_eq!(envelope["subject"], json!(on));

    signal(&child, stop_with);
    let status = tokio::time::timeout(ARRIVES, child.wait())
        .await
        .expect("the consumer exits")
        .expect("wait for the consumer");
    assert!(
        status.success(),
        "exit status {status:?}; output:\n{}",
        output.text()
    );
    output
        .wait_for("the count", ARRIVES, |line| line == "received 1 events")
        .await;
}

#[tokio::test]
async fn the_example_consumer_prints_a_published_event_and_stops_on_sigterm() {
    consumer_prints_and_stops_on(Signal::Term).await;
}

#[tokio::test]
async fn the_example_consumer_stops_on_ctrl_c_with_its_count() {
    consumer_prints_and_stops_on(Signal::Int).await;
}
