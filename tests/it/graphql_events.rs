//! The event log through GraphQL: filters, pagination, single events and a
//! project's history, after a full lifecycle.

use hub_tests::graphql::{data, data_as, view, views};
use hub_tests::ops;
use hub_tests::views::{Connection, Event, Origin, ProjectPayload};
use hub_tests::{TestDb, TestHub};
use serde_json::{json, Value};

/// One page (at most 1000) of `events(filter)`.
async fn events(hub: &TestHub, filter: Value) -> Vec<Event> {
    views(&hub.events(filter).await)
}

/// `events(filter)` once it lists exactly `count` events.
async fn events_eventually(hub: &TestHub, filter: Value, count: usize) -> Vec<Event> {
    views(&hub.events_eventually(filter, count).await)
}

fn sequences(events: &[Event]) -> Vec<i64> {
    events.iter().map(|event| event.sequence).collect()
}

fn event_types(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect()
}

#[tokio::test]
async fn events_are_filtered_by_subject_patterns_with_wildcards() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.run_lifecycle("Lifecycle").await;
    let other = hub.create_project("Other", "/srv/o").await;
    hub.start_and_wait(&other).await;

    let hub_id = hub.hub_id();
    let all = events_eventually(
        &hub,
        json!({ "subject": format!("hub.{hub_id}.project.>") }),
        10,
    )
    .await;
    let actions: Vec<String> = all
        .iter()
        .map(|e| e.subject.replace(&format!("hub.{hub_id}.project."), ""))
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

    let started = events(&hub, json!({ "subject": "hub.*.project.started" })).await;
    let aggregates: Vec<&str> = started.iter().map(|e| e.aggregate_id.as_str()).collect();
    assert_eq!(aggregates, [&id, &other]);
    let exact = events(
        &hub,
        json!({ "subject": format!("hub.{hub_id}.project.renamed") }),
    )
    .await;
    assert_eq!(event_types(&exact), ["ProjectRenamed"]);
    assert!(events(&hub, json!({ "subject": "hub.*.other.>" }))
        .await
        .is_empty());
    assert!(events(&hub, json!({ "subject": "hub.*.project" }))
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

    let mine = events(&hub, json!({ "aggregateId": id })).await;
    let all_seven: Vec<i64> = (1..=7).collect();
    assert_eq!(sequences(&mine), all_seven);
    let typed = events(
        &hub,
        json!({ "eventTypes": ["ProjectStarted", "ProjectStopped"] }),
    )
    .await;
    assert_eq!(event_types(&typed), ["ProjectStarted", "ProjectStopped"]);

    let third = mine[2].timestamp;
    let since = events(&hub, json!({ "aggregateId": id, "since": third })).await;
    assert_eq!(sequences(&since), all_seven[2..]);
    let until = events(&hub, json!({ "aggregateId": id, "until": third })).await;
    assert_eq!(sequences(&until), [1, 2]);

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..4 {
        let body = hub
            .graphql(
                ops::EVENTS,
                json!({ "filter": { "aggregateId": id }, "first": 2, "after": after }),
            )
            .await;
        let page: Connection<Event> = data_as(&body, "events");
        paged.extend(page.nodes().map(|event| event.sequence));
        after = page.page_info.end_cursor;
        if !page.page_info.has_next_page {
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
    let started: ProjectPayload = data_as(&body, "startProject");
    assert_eq!(started.correlation_id, "req-flow-42");

    // The orchestrator's completion carries the request's correlation id
    // and names the request event as its cause.
    let correlated = events_eventually(&hub, json!({ "correlationId": "req-flow-42" }), 2).await;
    assert_eq!(
        event_types(&correlated),
        ["ProjectStartRequested", "ProjectStarted"]
    );
    let (request, completion) = (&correlated[0], &correlated[1]);
    assert_eq!(request.aggregate_id, id);
    assert_eq!(completion.causation_id.as_ref(), Some(&request.id));
    assert_eq!(completion.origin.service, "hub-orchestrator");
    assert!(events(&hub, json!({ "correlationId": "req-other" }))
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
    // Compared as JSON: every field the two selections share, exactly.
    assert_eq!(data(&body, "event"), &listed);
    let listed: Event = view(&listed);
    assert_eq!(listed.payload["name"], "Evented");
    assert_eq!(listed.aggregate_type, "Project");

    let body = hub
        .graphql(one, json!({ "id": uuid::Uuid::new_v4() }))
        .await;
    assert!(data(&body, "event").is_null(), "{body}");
}

#[tokio::test]
async fn history_lists_a_projects_events_in_order_with_subject_and_origin() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let id = hub.run_lifecycle("Lifecycle").await;
    hub.events_eventually(json!({ "aggregateId": id }), 7).await;

    let body = hub.graphql(ops::HISTORY, json!({ "id": id })).await;
    let history: Vec<Event> = view(&data(&body, "project")["history"]);
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
        assert_eq!(event.sequence, i64::try_from(i + 1).unwrap());
        assert_eq!(
            event.subject,
            format!("hub.{}.project.{action}", hub.hub_id())
        );
        // Completions are recorded by the orchestrator, for the requester.
        let service = if matches!(action, "started" | "stopped") {
            "hub-orchestrator"
        } else {
            "hub-api"
        };
        let origin = Origin {
            hub_id: hub.hub_id().to_owned(),
            service: service.to_owned(),
            user: "anonymous".to_owned(),
        };
        assert_eq!(event.origin, origin);
        assert!(
            event.causation_id.as_ref().is_some_and(|c| !c.is_empty()),
            "{event:?}"
        );
        assert!(
            event.correlation_id.as_ref().is_some_and(|c| !c.is_empty()),
            "{event:?}"
        );
    }
}
