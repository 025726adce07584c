//! The real application, serving on an ephemeral port.

use std::net::SocketAddr;

use api::{App, ServeConfig};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The NATS server tests use: `NATS_URL`, default `nats://127.0.0.1:4222`.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// Deletes a JetStream stream (test clean-up); missing streams are fine.
pub async fn delete_stream(nats_url: &str, stream: &str) {
    if let Ok(client) = async_nats::connect(nats_url).await {
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_stream(stream).await;
    }
}

/// A hub serving on `127.0.0.1:<ephemeral>` until dropped. Dropping it also
/// deletes its JetStream stream (unless [`TestHub::keep_stream`] was called).
pub struct TestHub {
    addr: SocketAddr,
    hub_id: String,
    nats_url: String,
    stream_name: String,
    /// The stream to delete when dropped.
    stream: Option<String>,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestHub {
    /// A config for `database_url` with a hub id of its own.
    pub fn config(database_url: &str) -> ServeConfig {
        let mut config = ServeConfig::for_database(database_url);
        config.hub_id = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
        config.bind = ([127, 0, 0, 1], 0).into();
        config.nats.nats_url = nats_url();
        // Tests run in parallel on one server: keep each hub's share small.
        config.database.db_max_connections = 10;
        config.reads.db_read_connections = 4;
        config
    }

    /// Starts a hub on `database_url` with the default test config.
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(Self::config(database_url)).await
    }

    /// Starts a hub with `config` (its bind address is replaced by port 0).
    pub async fn start_with(config: ServeConfig) -> Self {
        crate::init_logging();
        let app = App::build(&config).await.expect("build the hub");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stream_name: config.stream_settings().name,
            stream: Some(config.stream_settings().name),
            nats_url: config.nats.nats_url.clone(),
            hub_id: config.hub_id,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The hub's id.
    pub fn hub_id(&self) -> &str {
        &self.hub_id
    }

    /// The hub's JetStream stream name.
    pub fn stream_name(&self) -> String {
        self.stream_name.clone()
    }

    /// Leaves the stream in place when this hub is dropped (another hub of
    /// the same id goes on using it; that one cleans up).
    pub fn keep_stream(&mut self) {
        self.stream = None;
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs a GraphQL operation; returns the response body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_request(query, variables, &[]).await.1
    }

    /// POSTs a GraphQL operation with extra headers; returns the response
    /// headers and body.
    pub async fn graphql_request(
        &self,
        query: &str,
        variables: Value,
        headers: &[(&str, &str)],
    ) -> (reqwest::header::HeaderMap, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.url()))
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("send GraphQL request");
        let headers = response.headers().clone();
        let body = response.json().await.expect("GraphQL response is JSON");
        (headers, body)
    }

    /// Creates a project; returns its id.
    pub async fn create_project(&self, name: &str, path: &str) -> String {
        let body = self
            .graphql(
                "mutation($input: CreateProjectInput!) { createProject(input: $input) { project { id } } }",
                json!({ "input": { "name": name, "path": path } }),
            )
            .await;
        body["data"]["createProject"]["project"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createProject failed: {body}"))
            .to_owned()
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        self.shutdown_now().await;
    }

    async fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(stream) = self.stream.take() {
            let url = self.nats_url.clone();
            let cleaned = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(delete_stream(&url, &stream));
            })
            .join();
            drop(cleaned);
        }
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}
