//! A real `hub serve` process on a database of its own, for the tests that
//! replay attacks: what they must show is that the same process is still
//! alive and serving afterwards.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::ops::Response;
use crate::reliability::{HubProcess, HubSpec};
use crate::TestDb;

/// How long `/health` may take while the hub is under attack.
pub const HEALTH_WITHIN: Duration = Duration::from_secs(1);

/// A spawned hub and its database.
pub struct SpawnedHub {
    /// The process.
    pub process: HubProcess,
    /// Its database (dropped after the process).
    pub db: TestDb,
    http: reqwest::Client,
    pid: u32,
}

/// A hub id of its own for a test.
pub fn hub_id(prefix: &str) -> String {
    format!(
        "test-{prefix}-{}",
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

impl SpawnedHub {
    /// Starts a hub with the further variables `env`.
    pub async fn start(prefix: &str, env: &[(&str, &str)]) -> Self {
        let db = TestDb::create().await;
        let mut spec = HubSpec::new(db.url(), &crate::hub::nats_url(), &hub_id(prefix));
        spec.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::start_spec(db, spec).await
    }

    /// Starts a hub from `spec` on `db`.
    pub async fn start_spec(db: TestDb, spec: HubSpec) -> Self {
        let process = HubProcess::start(spec).await;
        let pid = process.pid();
        Self {
            process,
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            pid,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.process.url()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.url().trim_start_matches("http://").to_owned()
    }

    /// An HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The hub's id.
    pub fn hub_id(&self) -> &str {
        &self.process.spec().hub_id
    }

    /// POSTs `body` (any JSON) to `/graphql`.
    pub async fn graphql_body(&self, body: &Value) -> Response {
        let response = self
            .http
            .post(format!("{}/graphql", self.url()))
            .json(body)
            .send()
            .await
            .expect("POST /graphql");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read the answer");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("the answer ({status}) is not JSON: {text}"));
        Response {
            status,
            headers,
            body,
        }
    }

    /// POSTs one operation to `/graphql`.
    pub async fn graphql(&self, query: &str, variables: Value) -> Response {
        self.graphql_body(&json!({ "query": query, "variables": variables }))
            .await
    }

    /// Creates a project; returns its id.
    pub async fn create_project(&self, name: &str) -> String {
        let answer = self
            .graphql(
                "mutation($input: CreateProjectInput!) { createProject(input: $input) { project { id } } }",
                json!({ "input": { "name": name, "path": format!("/srv/{name}") } }),
            )
            .await;
        answer.body["data"]["createProject"]["project"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createProject failed: {}", answer.body))
            .to_owned()
    }

    /// Checks that the process that started is still the one running, and
    /// that `/health` answers within [`HEALTH_WITHIN`].
    ///
    /// # Panics
    /// When it exited, was replaced, or `/health` did not answer in time.
    pub async fn assert_alive(&mut self) {
        assert!(
            self.process.is_running(),
            "the hub exited:\n{}",
            self.process.log_tail(40)
        );
        assert_eq!(self.process.pid(), self.pid, "the same process serves");
        let answer = self
            .http
            .get(format!("{}/health", self.url()))
            .timeout(HEALTH_WITHIN)
            .send()
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "/health did not answer within {HEALTH_WITHIN:?} ({err}):\n{}",
                    self.process.log_tail(20)
                )
            });
        assert_eq!(answer.status(), StatusCode::OK, "/health answers 200");
    }
}

impl SpawnedHub {
    /// Waits until subscription `id` on `client` is live: creates probe
    /// projects until it reports one (a subscription starts some time after
    /// `subscribe`, without saying so), skipping other subscriptions'
    /// messages; returns that first result.
    ///
    /// # Panics
    /// When nothing arrives for it within 15 s, or the socket closes.
    pub async fn wait_live(&self, client: &mut crate::ws::WsClient, id: &str) -> Value {
        use crate::ws::Incoming;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut probes = 0;
        while tokio::time::Instant::now() < deadline {
            probes += 1;
            let tag = &Uuid::new_v4().simple().to_string()[..8];
            self.create_project(&format!("probe-{id}-{probes}-{tag}"))
                .await;
            let round = tokio::time::Instant::now() + Duration::from_millis(500);
            while let Some(message) = client.try_next(round - tokio::time::Instant::now()).await {
                match message {
                    Incoming::Next { id: got, payload } if got == id => return payload,
                    Incoming::Closed(frame) => panic!("the socket closed: {frame:?}"),
                    _ => {}
                }
                if tokio::time::Instant::now() >= round {
                    break;
                }
            }
        }
        panic!("subscription {id} reported none of the changes made for 15 s");
    }
}

impl Drop for SpawnedHub {
    fn drop(&mut self) {
        let (url, stream) = (
            self.process.spec().nats_url.clone(),
            self.process.spec().stream(),
        );
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(crate::hub::delete_stream(&url, &stream));
        })
        .join();
        drop(cleaned);
    }
}
