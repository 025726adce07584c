//! Building the application: pool, migrations, command bus, feed runners,
//! schema and router. Tests build the same application on port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_graphql::http::GraphiQLSource;
use async_graphql_axum::GraphQLResponse;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Extension, Router};
use domain::ProjectServices;
use infrastructure::feed::{spawn_runner, AppendSignal, FeedHandle, PoisonPolicy, RunnerConfig};
use infrastructure::lookup::PgProjectLookup;
use infrastructure::nats::{LiveFeed, NatsRelay};
use infrastructure::orchestration::{OrchestrationConfig, ProcessManager};
use infrastructure::CommandBus;
use infrastructure::IntegrationPublisher;
use projections::{EventLogProjection, ProjectsProgress, ProjectsProjection, ReadModels};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::{door_limits, ServeConfig};
use crate::graphql::door::{self, OpenSubscriptions};
use crate::graphql::{build_schema, ApiState, HubSchema, RequestContext, SchemaLimits};
use crate::http::correlation::{self, CorrelationId};
use crate::http::server::{self, ServerLimits};
use crate::http::{auth, health, limits, ws};
use crate::metrics::{self, Metrics};
use crate::rebuilds::Rebuilds;
use crate::rest::{self, RestState};

/// Shared by every HTTP handler.
#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema (holds the [`ApiState`]).
    pub schema: HubSchema,
    /// The database pool.
    pub pool: PgPool,
    /// The feed consumers running (or standing by) in this process.
    pub feeds: Arc<Vec<FeedHandle>>,
    /// Required for mutations and subscriptions when set.
    pub api_token: Option<SecretString>,
    /// The NATS connection.
    pub nats: async_nats::Client,
    /// Where NATS is (for health reports).
    pub nats_url: String,
    /// How long a WebSocket may stay open without `connection_init`.
    pub ws_init_timeout: Duration,
    /// Largest accepted WebSocket message.
    pub ws_max_message_bytes: usize,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Most operations in one batched GraphQL request.
    pub max_batch: usize,
    /// GraphQL subscriptions open in this process.
    pub subscriptions: Arc<OpenSubscriptions>,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<Metrics>,
    /// What the REST event API needs.
    pub rest: RestState,
}

/// The built application, ready to serve.
pub struct App {
    router: Router,
    state: AppState,
    server: ServerLimits,
}

impl App {
    /// Connects, migrates, starts the feed consumers and builds the router.
    ///
    /// # Errors
    /// When the configuration is unsafe or the database cannot be migrated.
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Self> {
        config.check_exposure().map_err(anyhow::Error::msg)?;
        let orchestrator = config
            .orchestration
            .orchestrator()
            .map_err(anyhow::Error::msg)?;
        let pool = infrastructure::db::connect_lazy(&config.database.db_config())
            .context("while configuring the database pool")?;
        infrastructure::db::migrate(&pool)
            .await
            .context("while applying database migrations")?;

        let appended = AppendSignal::default();
        let runner_config = RunnerConfig {
            max_poll: Duration::from_millis(config.feed_poll_ms.max(1)),
            ..RunnerConfig::default()
        };
        let connect = (*pool.connect_options()).clone();
        let projects_projection = Arc::new(ProjectsProjection::new());
        let committed_rows = projects_projection.committed_rows();
        let recent_rows = projects_projection.recent();
        // The read models park an event they keep failing on and go on
        // (`hub projections retry` replays it); the relay and the process
        // manager keep the default, `Halt`: they must not skip an event.
        let read_model_config = RunnerConfig {
            poison: PoisonPolicy::Park,
            ..runner_config.clone()
        };
        let projects = spawn_runner(
            projects_projection,
            connect.clone(),
            read_model_config.clone(),
            &appended,
        );
        let event_log = spawn_runner(
            Arc::new(EventLogProjection::new(config.hub_id.clone())),
            connect,
            read_model_config,
            &appended,
        );
        let projects_progress = ProjectsProgress {
            status: projects.watch(),
            rows: committed_rows,
            recent: recent_rows,
        };

        let nats = infrastructure::nats::connect(&config.nats_url)
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))
            .with_context(|| {
                format!(
                    "while configuring the NATS connection to {}",
                    config.nats_url
                )
            })?;
        let js = async_nats::jetstream::new(nats.clone());
        let stream = config.stream_settings();
        let relay = spawn_runner(
            Arc::new(NatsRelay::new(
                js.clone(),
                stream.clone(),
                config.hub_id.clone(),
            )),
            (*pool.connect_options()).clone(),
            RunnerConfig {
                max_backoff: Duration::from_secs(5),
                ..runner_config.clone()
            },
            &appended,
        );
        let live = Arc::new(LiveFeed::start(
            js,
            stream,
            config.ws.subscriber_buffer.max(1),
        ));
        let metrics = Arc::new(Metrics::new());
        let rest = RestState {
            publisher: Arc::new(IntegrationPublisher::new(pool.clone(), appended.clone())),
            read: ReadModels::new(pool.clone()),
            live: live.clone(),
            hub_id: config.hub_id.clone(),
            event_log_progress: event_log.watch(),
            read_your_writes_timeout: Duration::from_millis(config.read_your_writes_timeout_ms),
        };

        let services = ProjectServices::new(PgProjectLookup::new(pool.clone(), config.port_range));
        let bus = Arc::new(CommandBus::new(pool.clone(), services, appended.clone()));
        let orchestration = spawn_runner(
            Arc::new(ProcessManager::new(
                pool.clone(),
                bus.clone(),
                orchestrator,
                OrchestrationConfig {
                    hub_id: config.hub_id.clone(),
                    timeout: config.orchestration.timeout(),
                },
            )),
            (*pool.connect_options()).clone(),
            // The orchestrator's batches record requests it then acts on
            // (runs commands): they must survive a database crash.
            RunnerConfig {
                durable_commits: true,
                ..runner_config.clone()
            },
            &appended,
        );
        let rebuilds = Rebuilds::new(pool.clone(), config.hub_id.clone());
        if config.rebuild_outdated {
            rebuild_outdated(&pool, &rebuilds, &config.hub_id);
        }
        let api = ApiState {
            bus,
            metrics: metrics.clone(),
            read: ReadModels::new(pool.clone()),
            hub_id: config.hub_id.clone(),
            projects_progress,
            read_your_writes_timeout: Duration::from_millis(config.read_your_writes_timeout_ms),
            live,
            rebuilds,
        };
        let subscriptions = Arc::new(OpenSubscriptions::default());
        let schema = build_schema(
            api,
            SchemaLimits {
                door: door_limits(&config.graphql, &config.ws),
                introspection: config.graphql.graphql_introspection,
            },
            subscriptions.clone(),
        );
        let state = AppState {
            schema,
            pool,
            feeds: Arc::new(vec![projects, event_log, relay, orchestration]),
            api_token: config.api_token.clone(),
            nats,
            nats_url: config.nats_url.clone(),
            ws_init_timeout: Duration::from_secs(config.ws.ws_init_timeout_secs),
            ws_max_message_bytes: config.ws.ws_max_message_bytes,
            max_body_bytes: config.http.max_body_bytes,
            max_batch: config.graphql.graphql_max_batch.max(1),
            subscriptions,
            metrics,
            rest,
        };
        let max_body = config.http.max_body_bytes;
        let router = Router::new()
            .route("/graphql", get(graphiql).post(graphql))
            .route("/graphql/ws", get(ws::graphql_ws))
            .route("/health", get(health::health))
            .route("/health/nats", get(health::nats))
            .route("/metrics", get(metrics::scrape))
            .layer(DefaultBodyLimit::max(max_body))
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                limits::reject_large_bodies(max_body, req, next)
            }))
            .merge(rest::router(max_body))
            .layer(middleware::from_fn_with_state(
                state.metrics.clone(),
                metrics::track_http,
            ))
            .layer(middleware::from_fn(correlation::correlate))
            .with_state(state.clone());
        Ok(Self {
            router,
            state,
            server: config.http.server_limits(),
        })
    }

    /// The application's state (for tests and embedding).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves on `listener` until `shutdown` completes.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "hub is serving GraphQL on /graphql");
        server::serve(listener, self.router, self.server, shutdown)
            .await
            .context("while serving HTTP")?;
        for feed in self.state.feeds.iter() {
            feed.stop();
        }
        Ok(())
    }
}

/// Starts rebuilding, in the background, the read models whose tables an
/// older version of their projection built. Several hubs starting at once
/// is fine: each rebuild runs in one process only, and one that finds its
/// table already current has nothing to do.
fn rebuild_outdated(pool: &PgPool, rebuilds: &Rebuilds, hub_id: &str) {
    let (pool, rebuilds, hub_id) = (pool.clone(), rebuilds.clone(), hub_id.to_owned());
    tokio::spawn(async move {
        let outdated = match projections::status::outdated(&pool, &hub_id).await {
            Ok(outdated) => outdated,
            Err(err) => {
                tracing::error!(error = %err, "could not read the read models' versions; no rebuild started (restart the hub or use `hub projections rebuild`)");
                return;
            }
        };
        if outdated.is_empty() {
            return;
        }
        let names: Vec<&str> = outdated.iter().map(|t| t.name()).collect();
        tracing::info!(
            ?names,
            "read models built by an older projection version: rebuilding them"
        );
        if let Err(err) = rebuilds.start(outdated) {
            tracing::warn!(error = %err, "outdated read models not rebuilt now");
        }
    });
}

async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

async fn graphql(
    State(state): State<AppState>,
    Extension(CorrelationId(correlation_id)): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return limits::too_large(state.max_body_bytes);
        }
        Err(rejection) if server::is_body_timeout(&rejection) => {
            return graphql_error(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "the request body did not arrive in time",
            );
        }
        Err(rejection) => {
            return graphql_error(
                StatusCode::BAD_REQUEST,
                door::codes::INVALID_INPUT,
                &format!(
                    "the request body could not be read: {}",
                    rejection.body_text()
                ),
            );
        }
    };
    let request: async_graphql::BatchRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return graphql_error(
                StatusCode::BAD_REQUEST,
                door::codes::INVALID_INPUT,
                &format!("the request body is not a GraphQL request in JSON: {err}"),
            );
        }
    };
    if let async_graphql::BatchRequest::Batch(operations) = &request {
        if operations.len() > state.max_batch {
            return graphql_error(
                StatusCode::BAD_REQUEST,
                door::codes::BATCH_TOO_LARGE,
                &format!(
                    "the batch holds {} operations; at most {} are allowed in one request",
                    operations.len(),
                    state.max_batch
                ),
            );
        }
    }
    let authorized = auth::is_authorized(state.api_token.as_ref(), &headers);
    let context = RequestContext {
        correlation_id,
        authorized,
        user: if state.api_token.is_some() && authorized {
            "token".to_owned()
        } else {
            "anonymous".to_owned()
        },
    };
    let mut response = state.schema.execute_batch(request.data(context)).await;
    match &mut response {
        async_graphql::BatchResponse::Single(single) => with_codes(single),
        async_graphql::BatchResponse::Batch(all) => all.iter_mut().for_each(with_codes),
    }
    GraphQLResponse::from(response).into_response()
}

/// Errors raised by the GraphQL engine itself (syntax, unknown fields,
/// depth and complexity limits, argument types) carry no code; they are all
/// problems with the request, so they get INVALID_INPUT.
fn with_codes(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "INVALID_INPUT");
        }
    }
}

/// A GraphQL-shaped error response for a request that never reached the engine.
fn graphql_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({
            "errors": [{ "message": message, "extensions": { "code": code } }]
        })),
    )
        .into_response()
}
