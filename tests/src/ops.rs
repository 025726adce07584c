//! The GraphQL operations most tests send, and a response type that keeps
//! the HTTP status next to the body.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::TestHub;

/// Every field of `Project` but `history`, as the fragment `P`.
macro_rules! project_fragment {
    () => {
        " fragment P on Project { id name slug path status version \
         ports { backend frontend postgres redis } \
         createdAt updatedAt lastStartedAt lastStoppedAt lastError }"
    };
}

/// `createProject(input: {name, path})`, answering `correlationId` and `project { ...P }`.
pub const CREATE: &str = concat!(
    "mutation($name: String!, $path: String!) { createProject(input: {name: $name, path: $path}) \
     { correlationId project { ...P } } }",
    project_fragment!()
);

/// `startProject(id, expectedVersion)`.
pub const START: &str = concat!(
    "mutation($id: ID!, $v: Int) { startProject(id: $id, expectedVersion: $v) \
     { correlationId project { ...P } } }",
    project_fragment!()
);

/// `stopProject(id, expectedVersion)`.
pub const STOP: &str = concat!(
    "mutation($id: ID!, $v: Int) { stopProject(id: $id, expectedVersion: $v) \
     { correlationId project { ...P } } }",
    project_fragment!()
);

/// `restartProject(id, expectedVersion)`.
pub const RESTART: &str = concat!(
    "mutation($id: ID!, $v: Int) { restartProject(id: $id, expectedVersion: $v) \
     { correlationId project { ...P } } }",
    project_fragment!()
);

/// `renameProject(id, name, expectedVersion)`.
pub const RENAME: &str = concat!(
    "mutation($id: ID!, $name: String!, $v: Int) { renameProject(id: $id, name: $name, expectedVersion: $v) \
     { correlationId project { ...P } } }",
    project_fragment!()
);

/// `deleteProject(id, expectedVersion)`.
pub const DELETE: &str = concat!(
    "mutation($id: ID!, $v: Int) { deleteProject(id: $id, expectedVersion: $v) \
     { correlationId project { ...P } } }",
    project_fragment!()
);

/// `project(id)`.
pub const PROJECT_BY_ID: &str = concat!(
    "query($id: ID!) { project(id: $id) { ...P } }",
    project_fragment!()
);

/// `project(slug)`.
pub const PROJECT_BY_SLUG: &str = concat!(
    "query($slug: String!) { project(slug: $slug) { ...P } }",
    project_fragment!()
);

/// `projectStats` with every count.
pub const STATS: &str =
    "{ projectStats { total running stopped starting stopping errors deleted } }";

/// `events(filter, first, after)` with every event field.
pub const EVENTS: &str = "query($filter: EventFilter, $first: Int, $after: String) { \
     events(filter: $filter, first: $first, after: $after) { \
       pageInfo { hasNextPage endCursor } \
       edges { cursor node { id subject eventType eventVersion aggregateType aggregateId \
         sequence position correlationId causationId origin { hubId service user } \
         payload timestamp } } } }";

/// `project(id).history` with every field of [`crate::views::Event`].
pub const HISTORY: &str = "query($id: ID!) { project(id: $id) { history { id subject eventType \
     eventVersion aggregateType aggregateId sequence position correlationId causationId \
     origin { hubId service user } payload timestamp } } }";

/// A GraphQL answer over HTTP.
#[derive(Debug)]
pub struct Response {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: Value,
}

impl Response {
    /// The `extensions.code` of the first error, if any.
    pub fn code(&self) -> Option<&str> {
        crate::hub::error_code(&self.body)
    }
}

/// The mutations' payload project: `data.<field>.project`.
///
/// # Panics
/// When the mutation failed.
pub fn payload<'a>(body: &'a Value, field: &str) -> &'a Value {
    let project = &body["data"][field]["project"];
    assert!(project.is_object(), "{field} failed: {body}");
    project
}

impl TestHub {
    /// POSTs a GraphQL operation with extra headers; returns status, headers
    /// and body.
    pub async fn graphql_response(
        &self,
        query: &str,
        variables: Value,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .http()
            .post(format!("{}/graphql", self.url()))
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("send GraphQL request");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.expect("GraphQL response is JSON");
        Response {
            status,
            headers,
            body,
        }
    }

    /// Sends `startProject`; returns the body.
    pub async fn start_project(&self, id: &str, expected_version: Option<i64>) -> Value {
        self.graphql(START, json!({ "id": id, "v": expected_version }))
            .await
    }

    /// Sends `stopProject`; returns the body.
    pub async fn stop_project(&self, id: &str, expected_version: Option<i64>) -> Value {
        self.graphql(STOP, json!({ "id": id, "v": expected_version }))
            .await
    }

    /// Sends `restartProject`; returns the body.
    pub async fn restart_project(&self, id: &str, expected_version: Option<i64>) -> Value {
        self.graphql(RESTART, json!({ "id": id, "v": expected_version }))
            .await
    }

    /// Waits until `project(id)` has `status` (the orchestrator completes
    /// starts and stops after the mutation answered); returns the project.
    ///
    /// # Panics
    /// When it does not within 15 s.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        let what = format!("project {id} to be {status}");
        crate::wait_until(&what, std::time::Duration::from_secs(15), || async {
            let project = self.project(id).await;
            (project["status"] == status).then_some(project)
        })
        .await
    }

    /// Starts project `id` and waits until it is RUNNING; returns the
    /// project then.
    ///
    /// # Panics
    /// When the start is refused or does not complete.
    pub async fn start_and_wait(&self, id: &str) -> Value {
        let body = self.start_project(id, None).await;
        let started = payload(&body, "startProject");
        assert!(
            started["status"] == "STARTING" || started["status"] == "RUNNING",
            "startProject answers STARTING (or RUNNING if already done): {body}"
        );
        self.wait_for_status(id, "RUNNING").await
    }

    /// Stops project `id` and waits until it is STOPPED; returns the
    /// project then.
    ///
    /// # Panics
    /// When the stop is refused or does not complete.
    pub async fn stop_and_wait(&self, id: &str) -> Value {
        let body = self.stop_project(id, None).await;
        let stopping = payload(&body, "stopProject");
        assert!(
            stopping["status"] == "STOPPING" || stopping["status"] == "STOPPED",
            "stopProject answers STOPPING (or STOPPED if already done): {body}"
        );
        self.wait_for_status(id, "STOPPED").await
    }

    /// Sends `renameProject`; returns the body.
    pub async fn rename_project(&self, id: &str, name: &str) -> Value {
        self.graphql(RENAME, json!({ "id": id, "name": name }))
            .await
    }

    /// Sends `deleteProject`; returns the body.
    pub async fn delete_project(&self, id: &str) -> Value {
        self.graphql(DELETE, json!({ "id": id })).await
    }

    /// Creates a project named `name`, then starts it (waiting for
    /// RUNNING), stops it (waiting for STOPPED), renames it (to `<name>
    /// Renamed`) and deletes it: 7 events. Returns its id.
    ///
    /// # Panics
    /// When a step fails.
    pub async fn run_lifecycle(&self, name: &str) -> String {
        let id = self.create_project(name, "/srv/lifecycle").await;
        self.start_and_wait(&id).await;
        self.stop_and_wait(&id).await;
        let renamed = format!("{name} Renamed");
        payload(&self.rename_project(&id, &renamed).await, "renameProject");
        payload(&self.delete_project(&id).await, "deleteProject");
        id
    }

    /// `project(id)`: the project, or JSON null.
    pub async fn project(&self, id: &str) -> Value {
        let body = self.graphql(PROJECT_BY_ID, json!({ "id": id })).await;
        assert!(body["errors"].is_null(), "project(id) failed: {body}");
        body["data"]["project"].clone()
    }

    /// `projectStats`.
    pub async fn stats(&self) -> Value {
        let body = self.graphql(STATS, json!({})).await;
        assert!(body["errors"].is_null(), "projectStats failed: {body}");
        body["data"]["projectStats"].clone()
    }

    /// The nodes of one `events` page (at most 1000) matching `filter`.
    pub async fn events(&self, filter: Value) -> Vec<Value> {
        let body = self
            .graphql(EVENTS, json!({ "filter": filter, "first": 1000 }))
            .await;
        let edges = body["data"]["events"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("events failed: {body}"));
        edges.iter().map(|edge| edge["node"].clone()).collect()
    }
}

impl TestHub {
    /// Waits until `events(filter)` lists exactly `count` events (the event
    /// log is a projection and may lag a moment behind the store); returns them.
    pub async fn events_eventually(&self, filter: Value, count: usize) -> Vec<Value> {
        let what = format!("{count} events matching {filter}");
        crate::wait_until(&what, std::time::Duration::from_secs(10), || {
            let filter = filter.clone();
            async move {
                let events = self.events(filter).await;
                (events.len() == count).then_some(events)
            }
        })
        .await
    }
}
