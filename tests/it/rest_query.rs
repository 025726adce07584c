//! `GET /api/events` and `GET /api/events/{id}`: filters (NATS wildcards,
//! `LIKE` patterns, time, correlation, event types), limits and pages, clear 422s for
//! malformed parameters, 404 for unknown ids, and SQL metacharacters that
//! stay inert.

use std::time::Duration;

use hub_tests::rest::{self, subject, Answer};
use hub_tests::{TestDb, TestHub};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

fn subjects(answer: &rest::Answer) -> Vec<String> {
    answer
        .body
        .as_array()
        .unwrap_or_else(|| panic!("a JSON list: {answer:?}"))
        .iter()
        .map(|e| e["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A hub with a project event and three integration events, published in
/// this order: `audit.security.completed` (c-1), `audit.lint.completed`
/// (c-2), `deploy.done` (c-3).
async fn hub_with_events(db: &TestDb) -> (TestHub, Vec<Value>) {
    let hub = TestHub::start(db.url()).await;
    hub.create_project("Listed", "/srv/listed").await;
    let mut published = Vec::new();
    for (tail, correlation) in [
        ("audit.security.completed", "c-1"),
        ("audit.lint.completed", "c-2"),
        ("deploy.done", "c-3"),
    ] {
        let answer = rest::post(
            &hub,
            &json!({ "subject": subject(&hub, tail), "payload": {"step": tail}, "correlation_id": correlation }),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        published.push(answer.body);
    }
    (hub, published)
}

#[tokio::test]
async fn events_are_listed_oldest_first_and_filtered_by_subject_time_and_correlation() {
    let db = TestDb::create().await;
    let (hub, published) = hub_with_events(&db).await;
    let s = |tail: &str| subject(&hub, tail);

    let all = rest::list(&hub, &[]).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(
        subjects(&all),
        vec![
            s("project.created"),
            s("audit.security.completed"),
            s("audit.lint.completed"),
            s("deploy.done")
        ]
    );
    let first = &all.body[1];
    for key in [
        "id",
        "subject",
        "origin",
        "correlation_id",
        "payload",
        "timestamp",
    ] {
        assert!(!first[key].is_null(), "{key} in {first}");
    }
    assert_eq!(
        first["payload"],
        json!({"step": "audit.security.completed"})
    );

    let audits = vec![s("audit.security.completed"), s("audit.lint.completed")];
    for pattern in [
        s("audit.>"),
        "hub.*.audit.*.completed".to_owned(),
        s("audit.%"),
        "%.completed".to_owned(),
    ] {
        let answer = rest::list(&hub, &[("subject", pattern.as_str())]).await;
        assert_eq!(subjects(&answer), audits, "subject={pattern}");
    }
    let exact = rest::list(&hub, &[("subject", s("deploy.done").as_str())]).await;
    assert_eq!(subjects(&exact), vec![s("deploy.done")]);
    let none = rest::list(&hub, &[("subject", "hub.another-hub.>")]).await;
    assert_eq!(subjects(&none), Vec::<String>::new());

    let by_correlation = rest::list(&hub, &[("correlation_id", "c-2")]).await;
    assert_eq!(subjects(&by_correlation), vec![s("audit.lint.completed")]);

    let second_at = published[1]["timestamp"].as_str().unwrap();
    let since = rest::list(&hub, &[("since", second_at)]).await;
    assert_eq!(
        subjects(&since),
        vec![s("audit.lint.completed"), s("deploy.done")]
    );
    let until = rest::list(&hub, &[("until", second_at)]).await;
    assert_eq!(
        subjects(&until),
        vec![s("project.created"), s("audit.security.completed")]
    );
    let window = rest::list(
        &hub,
        &[
            ("since", second_at),
            ("until", published[2]["timestamp"].as_str().unwrap()),
            ("subject", "hub.>"),
        ],
    )
    .await;
    assert_eq!(subjects(&window), vec![s("audit.lint.completed")]);
}

#[tokio::test]
async fn events_are_filtered_by_type_repeated_or_comma_separated() {
    let db = TestDb::create().await;
    let (hub, _) = hub_with_events(&db).await;
    let id = hub.create_project("Renamed", "/srv/renamed").await;
    hub.rename_project(&id, "Renamed twice").await;
    hub_tests::wait_until(
        "the rename in the event log",
        Duration::from_secs(10),
        || async {
            let answer = rest::list(&hub, &[("type", "ProjectRenamed")]).await;
            (answer.body.as_array().map(Vec::len) == Some(1)).then_some(())
        },
    )
    .await;
    let s = |tail: &str| subject(&hub, tail);
    let types = |answer: &rest::Answer| -> Vec<String> {
        answer
            .body
            .as_array()
            .unwrap_or_else(|| panic!("a JSON list: {answer:?}"))
            .iter()
            .map(|e| e["event_type"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let created = rest::list(&hub, &[("type", "ProjectCreated")]).await;
    assert_eq!(types(&created), ["ProjectCreated", "ProjectCreated"]);
    let both = rest::list(&hub, &[("type", "ProjectRenamed, ProjectCreated")]).await;
    assert_eq!(
        types(&both),
        ["ProjectCreated", "ProjectCreated", "ProjectRenamed"]
    );
    let repeated = rest::list(
        &hub,
        &[
            ("type", "ProjectRenamed"),
            ("type", "IntegrationEventPublished"),
        ],
    )
    .await;
    assert_eq!(
        types(&repeated),
        [
            "IntegrationEventPublished",
            "IntegrationEventPublished",
            "IntegrationEventPublished",
            "ProjectRenamed"
        ]
    );
    let with_subject = rest::list(
        &hub,
        &[
            ("type", "IntegrationEventPublished,ProjectCreated"),
            ("subject", s("audit.>").as_str()),
        ],
    )
    .await;
    assert_eq!(
        subjects(&with_subject),
        [s("audit.security.completed"), s("audit.lint.completed")]
    );
    let none = rest::list(&hub, &[("type", "projectcreated")]).await;
    assert_eq!(none.body, json!([]), "types match exactly");

    let paged = rest::list(&hub, &[("type", "ProjectCreated"), ("limit", "1")]).await;
    let cursor = paged.headers["x-next-cursor"].to_str().unwrap().to_owned();
    let next = rest::list(
        &hub,
        &[
            ("type", "ProjectCreated"),
            ("limit", "1"),
            ("after", &cursor),
        ],
    )
    .await;
    assert_eq!(subjects(&next), [s("project.created")]);
    assert!(next.headers.get("x-next-cursor").is_none(), "{next:?}");
}

#[tokio::test]
async fn a_limit_cuts_the_list_and_the_next_cursor_continues_it() {
    let db = TestDb::create().await;
    let (hub, _) = hub_with_events(&db).await;
    let page = rest::list(&hub, &[("limit", "3")]).await;
    assert_eq!(subjects(&page).len(), 3);
    let cursor = page.headers["x-next-cursor"]
        .to_str()
        .expect("a cursor")
        .to_owned();
    let rest_of_it = rest::list(&hub, &[("limit", "3"), ("after", cursor.as_str())]).await;
    assert_eq!(subjects(&rest_of_it), vec![subject(&hub, "deploy.done")]);
    assert!(
        rest_of_it.headers.get("x-next-cursor").is_none(),
        "no more pages"
    );

    let one = rest::list(&hub, &[("limit", "1")]).await;
    assert_eq!(subjects(&one), vec![subject(&hub, "project.created")]);
    let max = rest::list(&hub, &[("limit", "1000")]).await;
    assert_eq!(subjects(&max).len(), 4);
}

#[tokio::test]
async fn one_event_is_found_by_id_and_unknown_or_malformed_ids_are_told_apart() {
    let db = TestDb::create().await;
    let (hub, published) = hub_with_events(&db).await;
    let id = published[0]["event_id"].as_str().unwrap();
    let found = rest::get(&hub, &format!("/api/events/{id}")).await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.body["correlation_id"], "c-1");

    let unknown = Uuid::new_v4();
    let missing = rest::get(&hub, &format!("/api/events/{unknown}")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
    assert_eq!(missing.error_code(), "NOT_FOUND");
    assert!(missing.error_message().contains(&unknown.to_string()));

    for bad in ["not-a-uuid", "123", "%27%3B%20DROP%20TABLE%20events%3B--"] {
        let malformed = rest::get(&hub, &format!("/api/events/{bad}")).await;
        assert_eq!(
            malformed.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {malformed:?}"
        );
        assert_eq!(malformed.error_code(), "INVALID_INPUT");
        assert!(
            malformed.error_message().contains("not a valid event id"),
            "{malformed:?}"
        );
    }
}

/// A path the hub does not serve, or one the URL parser folds into such a
/// path (`%2E%2E` is `..`), is a typed 404; a known path asked with another
/// method is a typed 405 with `Allow`.
#[tokio::test]
async fn unknown_paths_and_methods_are_answered_in_the_error_shape() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    for path in ["/nowhere", "/api/", "/api/events/x/y", "/api/events/%2E%2E"] {
        let answer = rest::get(&hub, path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {answer:?}");
        assert_eq!(answer.error_code(), "NOT_FOUND", "{path}");
        assert!(
            answer.error_message().contains("/api/events"),
            "{path}: {answer:?}"
        );
    }
    let answer = Answer::read(
        hub.http()
            .delete(format!("{}/api/events", hub.url()))
            .send()
            .await
            .expect("DELETE /api/events"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{answer:?}");
    assert_eq!(answer.error_code(), "METHOD_NOT_ALLOWED");
    let allow = answer.headers.get("allow").expect("an Allow header");
    assert_eq!(allow, "GET,HEAD,POST");
}

#[tokio::test]
async fn malformed_parameters_get_422_with_a_message_naming_the_parameter() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let cases: &[(&str, &str, &str)] = &[
        ("limit", "0", "limit must be a whole number from 1 to 1000"),
        (
            "limit",
            "1001",
            "limit must be a whole number from 1 to 1000",
        ),
        ("limit", "-5", "limit must be"),
        ("limit", "ten", "limit must be"),
        ("since", "yesterday", "since must be an RFC 3339 timestamp"),
        ("since", "2024-05-01", "since must be an RFC 3339 timestamp"),
        (
            "until",
            "2024-13-01T00:00:00Z",
            "until must be an RFC 3339 timestamp",
        ),
        ("subject", "hub..x", "subject: "),
        ("subject", "hub.>.x", "wildcards must be whole tokens"),
        ("subject", "hub.pro*", "wildcards must be whole tokens"),
        ("subject", "", "subject: the subject pattern is empty"),
        ("correlation_id", "a\u{0}b", "correlation_id"),
        ("after", "not-a-cursor", ""),
        ("type", "", "type must name event types"),
        (
            "type",
            "ProjectCreated,,ProjectRenamed",
            "type must name event types",
        ),
    ];
    for (name, value, message) in cases {
        let answer = rest::list(&hub, &[(name, value)]).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}={value:?}: {answer:?}"
        );
        assert_eq!(answer.error_code(), "INVALID_INPUT", "{name}={value:?}");
        assert!(
            answer.error_message().contains(message),
            "{name}={value:?}: expected '{message}' in '{}'",
            answer.error_message()
        );
    }
    let twice = rest::list(&hub, &[("limit", "1"), ("limit", "2")]).await;
    assert_eq!(twice.status, StatusCode::UNPROCESSABLE_ENTITY, "{twice:?}");
    assert!(
        twice
            .error_message()
            .contains("limit is given more than once"),
        "{twice:?}"
    );
    let plus = rest::list(&hub, &[("since", "2024-05-01T12:00:00+02:00")]).await;
    assert_eq!(
        plus.status,
        StatusCode::OK,
        "an encoded offset is fine: {plus:?}"
    );
}

#[tokio::test]
async fn sql_metacharacters_in_every_filter_are_inert() {
    let db = TestDb::create().await;
    let (hub, _) = hub_with_events(&db).await;
    let hostile: &[(&str, String)] = &[
        ("subject", "hub.x.%'; DROP TABLE events;--".to_owned()),
        ("subject", "hub.x.'OR'1'='1".to_owned()),
        ("subject", "hub.x.\\".to_owned()),
        ("subject", format!("hub.{}.a_dit.%", hub.hub_id())),
        (
            "subject",
            format!("hub.{}.audit.security.completed_", hub.hub_id()),
        ),
        ("correlation_id", "' OR '1'='1".to_owned()),
        ("correlation_id", "c-%".to_owned()),
        ("correlation_id", "c-_".to_owned()),
        ("correlation_id", "'; DROP TABLE event_log;--".to_owned()),
    ];
    for (name, value) in hostile {
        let answer = rest::list(&hub, &[(name, value.as_str())]).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}={value}: {answer:?}");
        assert_eq!(answer.body, json!([]), "{name}={value} matched something");
    }
    assert_eq!(db.event_count().await, 4, "the events table survived");
    let everything = rest::list(&hub, &[("subject", "%")]).await;
    assert_eq!(subjects(&everything).len(), 4, "the event log survived");
}
