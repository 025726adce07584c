//! schemathesis (PyPI) fuzzes the REST API from its own contract
//! (`/openapi.json`): generated and malformed requests to every operation
//! must get no 5xx, and every answer (status, content type, headers, body)
//! must be one the document describes. Run on a hub without a token and on
//! one with a token (sent by schemathesis).
//!
//! The event stream is left out (its answer does not end), and
//! `positive_data_acceptance`: the document cannot say that a
//! subject must name this hub's id, or which numbers PostgreSQL gives back
//! unchanged, so some schema-valid events are rightly refused with 422.
//!
//! Needs schemathesis' `st` at `SCHEMATHESIS`; `./scripts/dev.sh test`
//! installs it and runs these tests.

use hub_tests::nats_server::NatsServer;
use hub_tests::{TestDb, TestHub};

/// A hub with the id the document's examples use (`local-hub`), so the
/// example events are accepted and their links followed, on a NATS
/// server of its own (the id is this test's alone).
async fn example_hub(db: &TestDb, nats: &NatsServer, token: Option<&str>) -> TestHub {
    let mut config = TestHub::config(db.url());
    config.hub_id = "local-hub".to_owned();
    config.nats.nats_url = nats.url();
    config.api_token = token.map(|token| token.to_owned().into());
    TestHub::start_with(config).await
}

async fn schemathesis_finds_nothing_on(hub: &TestHub, headers: &[&str]) {
    let st = std::env::var("SCHEMATHESIS")
        .expect("SCHEMATHESIS names schemathesis' `st` (./scripts/dev.sh test installs it)");
    let mut command = tokio::process::Command::new(&st);
    // Its cache of past failures (replayed first) stays out of the tree.
    command.current_dir(env!("CARGO_TARGET_TMPDIR"));
    command.args([
        "run",
        &format!("{}/openapi.json", hub.url()),
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--exclude-operation-id",
        "streamEvents",
        "--max-examples",
        "50",
        "--workers",
        "1",
        "--no-color",
    ]);
    for header in headers {
        command.args(["--header", header]);
    }
    let output = command
        .output()
        .await
        .unwrap_or_else(|err| panic!("run {st}: {err}"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(
        report.contains("Tested: 6"),
        "every operation was tested:\n{report}"
    );
    println!("{report}");
}

#[tokio::test]
#[ignore = "needs schemathesis at SCHEMATHESIS; ./scripts/dev.sh test runs it"]
async fn schemathesis_finds_nothing_on_a_hub_without_a_token() {
    let (db, nats) = (TestDb::create().await, NatsServer::start().await);
    let hub = example_hub(&db, &nats, None).await;
    schemathesis_finds_nothing_on(&hub, &[]).await;
}

#[tokio::test]
#[ignore = "needs schemathesis at SCHEMATHESIS; ./scripts/dev.sh test runs it"]
async fn schemathesis_finds_nothing_on_a_hub_with_a_token() {
    let (db, nats) = (TestDb::create().await, NatsServer::start().await);
    let hub = example_hub(&db, &nats, Some("s3cret-token")).await;
    schemathesis_finds_nothing_on(&hub, &["Authorization: Bearer s3cret-token"]).await;
}
