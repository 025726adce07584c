//! `openapi.json` is the REST API's contract: it must equal the document
//! the code serves at `GET /openapi.json`, and describe every REST route.

use std::path::PathBuf;

use hub_tests::{TestDb, TestHub};
use serde_json::Value;

fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi.json")
}

#[test]
fn the_checked_in_document_matches_the_code() {
    let actual = api::rest::openapi::json();
    let path = checked_in_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, actual).expect("write openapi.json");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "openapi.json is out of date with the code; review the change and regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p hub-tests --test it openapi_contract::`"
    );
}

#[tokio::test]
async fn the_hub_serves_the_document_with_every_rest_route() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let response = hub
        .http()
        .get(format!("{}/openapi.json", hub.url()))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let document: Value = response.json().await.expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    for (path, method) in [
        ("/api/events", "post"),
        ("/api/events", "get"),
        ("/api/events/{id}", "get"),
        ("/api/events/stream", "get"),
        ("/health", "get"),
        ("/health/nats", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is described");
        for status in ["403", "421", "503"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path} describes {status}"
            );
        }
    }
}
