//! A page of events whose filter has no index of its own reads at most
//! `HUB_EVENTS_PAGE_SCAN_ROWS` rows of the log (at least its size). Over
//! REST, GraphQL and `hub events`, a sparse filter's pages then stop short,
//! empty ones too, with a cursor to go on from; following them gives every
//! match once, in feed order, as the unfiltered log has them.

use std::time::Duration;

use futures::{stream, StreamExt};
use hub_tests::cli::{jsonl, ok};
use hub_tests::rest::{self, subject};
use hub_tests::{wait_until, TestDb, TestHub};
use serde_json::{json, Value};

/// Rows a page of these hubs reads at most.
const SCAN: u32 = 20;
/// Integration events published before each project is created: more than
/// the CLI's page of 1,000 reads, so its pages stop short too.
const BETWEEN: usize = 1_100;

/// A hub whose log holds `BETWEEN` integration events, a project, as many
/// events again and a second project; and every event of it, in order.
async fn sparse_log(db: &TestDb) -> (TestHub, Vec<Value>) {
    let mut config = TestHub::config(db.url());
    config.reads.events_page_scan_rows = SCAN;
    let hub = TestHub::start_with(config).await;
    for project in ["first", "second"] {
        let on = subject(&hub, "audit.filler");
        stream::iter(0..BETWEEN)
            .for_each_concurrent(16, |n| {
                let (hub, on) = (&hub, on.clone());
                async move {
                    rest::publish(hub, &on, json!({ "n": n })).await;
                }
            })
            .await;
        hub.create_project(project, &format!("/srv/{project}"))
            .await;
    }
    let all = wait_until("the log holds every event", Duration::from_secs(60), || {
        let hub = &hub;
        async move {
            // Unfiltered pages of 1,000 read as many rows: full pages.
            let all = follow_rest(hub, &[], 1_000).await.0;
            let created = all.iter().filter(|e| e["event_type"] == "ProjectCreated");
            (created.count() == 2).then_some(all)
        }
    })
    .await;
    (hub, all)
}

/// Follows `GET /api/events?<query>` with `limit` from the start to the
/// end: the events, and how many pages before the last held fewer than
/// `limit` (the empty ones among them).
async fn follow_rest(
    hub: &TestHub,
    query: &[(&str, &str)],
    limit: u32,
) -> (Vec<Value>, usize, usize) {
    let (mut events, mut short, mut empty) = (Vec::new(), 0, 0);
    let mut after: Option<String> = None;
    let limit = limit.to_string();
    loop {
        let mut pairs = query.to_vec();
        pairs.push(("limit", &limit));
        if let Some(after) = &after {
            pairs.push(("after", after));
        }
        let page = rest::list(hub, &pairs).await;
        assert!(page.status.is_success(), "{page:?}");
        let items = page.body.as_array().expect("a list").clone();
        let next = page
            .headers
            .get("x-next-cursor")
            .map(|value| value.to_str().expect("a cursor").to_owned());
        events.extend(items.iter().cloned());
        match next {
            Some(next) => {
                assert_ne!(after.as_ref(), Some(&next), "the cursor moves on");
                if items.len() < limit.parse().unwrap() {
                    short += 1;
                    empty += usize::from(items.is_empty());
                }
                after = Some(next);
            }
            None => return (events, short, empty),
        }
    }
}

/// The ids of `events`.
fn ids(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("an id"))
        .collect()
}

#[tokio::test]
async fn a_sparse_filters_pages_stop_at_their_scan_and_following_them_finds_every_match() {
    let db = TestDb::create().await;
    let (hub, all) = sparse_log(&db).await;
    let created: Vec<Value> = all
        .iter()
        .filter(|e| e["event_type"] == "ProjectCreated")
        .cloned()
        .collect();
    assert_eq!(created.len(), 2);

    // REST: pages of an event type, which has no index of its own.
    let (got, short, empty) = follow_rest(&hub, &[("type", "ProjectCreated")], 2).await;
    assert_eq!(ids(&got), ids(&created));
    assert!(
        short + 1 >= all.len() / SCAN as usize,
        "no page read more than its scan of {SCAN} of the {} events: {short} short pages",
        all.len()
    );
    assert!(empty > 0, "pages without a match still have a next page");
    // A filter with an index of its own pages as before: full pages, also
    // with more than the scan after its last event (the first project's).
    let one = created[0]["correlation_id"]
        .as_str()
        .expect("a correlation id");
    let (own, short, _) = follow_rest(&hub, &[("correlation_id", one)], 1).await;
    assert_eq!(short, 0, "{own:?}");
    assert!(ids(&own).contains(&created[0]["id"].as_str().unwrap()));

    // GraphQL: an empty page still has its next page and a cursor to it.
    let query = "query($after: String) { events(first: 2, after: $after, \
                   filter: { eventTypes: [\"ProjectCreated\"] }) { \
                   nodes { id } pageInfo { hasNextPage endCursor } } }";
    let (mut found, mut empty, mut after) = (Vec::new(), 0, Value::Null);
    loop {
        let body = hub.graphql(query, json!({ "after": after })).await;
        assert!(body["errors"].is_null(), "{body}");
        let page = &body["data"]["events"];
        let nodes = page["nodes"].as_array().expect("nodes");
        found.extend(nodes.iter().map(|n| n["id"].as_str().unwrap().to_owned()));
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        assert!(page["pageInfo"]["endCursor"].is_string(), "{body}");
        empty += usize::from(nodes.is_empty());
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(found, ids(&created));
    assert!(empty > 0, "GraphQL pages stopped at their scan too");

    // `hub events`: `query` and `export` go on past empty pages (the CLI
    // asks for 1,000 events a page; the log holds more than that between
    // the two projects).
    let url = hub.url();
    let printed = ok(&url, &["query", "--type", "ProjectCreated"], &[]).await;
    assert_eq!(ids(&jsonl(&printed)), ids(&created));
    let limited = ok(
        &url,
        &["query", "--type", "ProjectCreated", "--limit", "1"],
        &[],
    )
    .await;
    assert_eq!(ids(&jsonl(&limited)), ids(&created[..1]));
    let file = std::env::temp_dir().join(format!("page-scan-{}.jsonl", uuid::Uuid::new_v4()));
    let path = file.to_str().expect("a path");
    ok(
        &url,
        &["export", "--type", "ProjectCreated", "-o", path],
        &[],
    )
    .await;
    let exported = std::fs::read_to_string(&file).expect("the export");
    let _ = std::fs::remove_file(&file);
    assert_eq!(ids(&jsonl(&exported)), ids(&created));
}
