//! The event log through GraphQL: filters, pagination, single events and a
//! project's history, after a full lifecycle.

use hub_tests::ops;
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

fn field<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().map(|event| &event[name]).collect()
}

#[tokio::test]
async fn events_are_filtered_by_subject_patterns_with_wildcards() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.run_lifecycle("Lifecycle").await;
    let other = hub.create_project("Other", "/srv/o").await;
    hub.start_and_wait(&other).await;

    let hub_id = hub.hub_id();
    let all = hub
        .events_eventually(json!({ "subject": format!("hub.{hub_id}.project.>") }), 10)
        .await;
    let actions: Vec<String> = all
        .iter()
        .map(|e| {
            e["subject"]
                .as_str()
                .unwrap()
                .replace(&format!("hub.{hub_id}.project."), "")
        })
        .collect();
    assert_eq!(
        actions,
        [
            "created",
            "start_requested",
            "started",
            "stop_requested",
            "stopped",
            "renamed",
            "deleted",
            "created",
            "start_requested",
            "started"
        ]
    );

    let started = hub
        .events(json!({ "subject": "hub.*.project.started" }))
        .await;
    assert_eq!(field(&started, "aggregateId"), [&json!(id), &json!(other)]);
    let exact = hub
        .events(json!({ "subject": format!("hub.{hub_id}.project.renamed") }))
        .await;
    assert_eq!(field(&exact, "eventType"), [&json!("ProjectRenamed")]);
    assert!(hub
        .events(json!({ "subject": "hub.*.other.>" }))
        .await
        .is_empty());
    assert!(hub
        .events(json!({ "subject": "hub.*.project" }))
        .await
        .is_empty());
}

#[tokio::test]
async fn events_are_filtered_by_aggregate_event_type_and_time_and_paged() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.run_lifecycle("Lifecycle").await;
    hub.create_project("Noise", "/srv/n").await;
    hub.events_eventually(json!({}), 8).await;

    let mine = hub.events(json!({ "aggregateId": id })).await;
    let all_seven: Vec<Value> = (1..=7).map(|n| json!(n)).collect();
    assert_eq!(
        field(&mine, "sequence"),
        all_seven.iter().collect::<Vec<_>>()
    );
    let typed = hub
        .events(json!({ "eventTypes": ["ProjectStarted", "ProjectStopped"] }))
        .await;
    assert_eq!(
        field(&typed, "eventType"),
        [&json!("ProjectStarted"), &json!("ProjectStopped")]
    );

    let third = mine[2]["timestamp"].clone();
    let since = hub
        .events(json!({ "aggregateId": id, "since": third }))
        .await;
    assert_eq!(
        field(&since, "sequence"),
        all_seven[2..].iter().collect::<Vec<_>>()
    );
    let until = hub
        .events(json!({ "aggregateId": id, "until": third }))
        .await;
    assert_eq!(field(&until, "sequence"), [&json!(1), &json!(2)]);

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..4 {
        let body = hub
            .graphql(
                ops::EVENTS,
                json!({ "filter": { "aggregateId": id }, "first": 2, "after": after }),
            )
            .await;
        let connection = &body["data"]["events"];
        for edge in connection["edges"].as_array().unwrap() {
            paged.push(edge["node"]["sequence"].clone());
        }
        after = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
        if connection["pageInfo"]["hasNextPage"] == false {
            break;
        }
    }
    assert_eq!(paged, all_seven);
}

#[tokio::test]
async fn a_correlation_id_sent_with_a_mutation_is_echoed_and_finds_its_events() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.create_project("Correlated", "/srv/c").await;

    let (headers, body) = hub
        .graphql_request(
            ops::START,
            json!({ "id": id }),
            &[("X-Correlation-ID", "req-flow-42")],
        )
        .await;
    assert_eq!(headers["x-correlation-id"], "req-flow-42");
    assert_eq!(body["data"]["startProject"]["correlationId"], "req-flow-42");

    // The orchestrator's completion carries the request's correlation id
    // and names the request event as its cause.
    let events = hub
        .events_eventually(json!({ "correlationId": "req-flow-42" }), 2)
        .await;
    assert_eq!(
        field(&events, "eventType"),
        ["ProjectStartRequested", "ProjectStarted"]
    );
    assert_eq!(events[0]["aggregateId"], json!(id));
    assert_eq!(events[1]["causationId"], events[0]["id"]);
    assert_eq!(events[1]["origin"]["service"], "hub-orchestrator");
    assert!(hub
        .events(json!({ "correlationId": "req-other" }))
        .await
        .is_empty());
}

#[tokio::test]
async fn an_event_is_read_by_its_id() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    hub.create_project("Evented", "/srv/e").await;
    let listed = hub.events_eventually(json!({}), 1).await.remove(0);

    let one = "query($id: ID!) { event(id: $id) { id subject eventType eventVersion aggregateType \
               aggregateId sequence position correlationId causationId \
               origin { hubId service user } payload timestamp } }";
    let body = hub.graphql(one, json!({ "id": listed["id"] })).await;
    assert_eq!(body["data"]["event"], listed);
    assert_eq!(listed["payload"]["name"], "Evented");
    assert_eq!(listed["aggregateType"], "Project");

    let body = hub
        .graphql(one, json!({ "id": uuid::Uuid::new_v4() }))
        .await;
    assert!(
        body["errors"].is_null() && body["data"]["event"].is_null(),
        "{body}"
    );
}

#[tokio::test]
async fn history_lists_a_projects_events_in_order_with_subject_and_origin() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.run_lifecycle("Lifecycle").await;
    hub.events_eventually(json!({ "aggregateId": id }), 7).await;

    let query = "query($id: ID!) { project(id: $id) { history { subject eventType sequence \
                 causationId correlationId origin { hubId service user } } } }";
    let body = hub.graphql(query, json!({ "id": id })).await;
    let history = body["data"]["project"]["history"]
        .as_array()
        .unwrap_or_else(|| panic!("history failed: {body}"));
    let actions = [
        "created",
        "start_requested",
        "started",
        "stop_requested",
        "stopped",
        "renamed",
        "deleted",
    ];
    assert_eq!(history.len(), actions.len());
    for (i, (event, action)) in history.iter().zip(actions).enumerate() {
        assert_eq!(event["sequence"], json!(i + 1));
        assert_eq!(
            event["subject"],
            json!(format!("hub.{}.project.{action}", hub.hub_id()))
        );
        // Completions are recorded by the orchestrator, for the requester.
        let service = if matches!(action, "started" | "stopped") {
            "hub-orchestrator"
        } else {
            "hub-api"
        };
        assert_eq!(
            event["origin"],
            json!({ "hubId": hub.hub_id(), "service": service, "user": "anonymous" })
        );
        assert!(
            event["causationId"].as_str().is_some_and(|c| !c.is_empty()),
            "{event}"
        );
        assert!(
            event["correlationId"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{event}"
        );
    }
}
