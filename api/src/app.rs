//! Building the application: pool, migrations, command bus, feed runners,
//! schema and router. Tests build the same application on port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::routing::get;
use axum::Router;
use domain::ProjectServices;
use infrastructure::append::Appender;
use infrastructure::feed::{spawn_runner, AppendSignal, FeedHandle, PoisonPolicy, RunnerConfig};
use infrastructure::lookup::PgProjectLookup;
use infrastructure::nats::{LiveFeed, NatsRelay};
use infrastructure::orchestration::{OrchestrationConfig, ProcessManager};
use infrastructure::CommandBus;
use infrastructure::IntegrationPublisher;
use projections::{EventLogProjection, ProjectsProgress, ProjectsProjection, ReadModels};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::{door_limits, ServeConfig};
use crate::graphql::door::OpenSubscriptions;
use crate::graphql::fanout::Fanout;
use crate::graphql::{build_schema, ApiState, HubSchema, SchemaLimits};
use crate::http::access::{self, Access};
use crate::http::server::{self, Connections, ServerLimits, SocketSlots};
use crate::http::{console, correlation, graphql, health, hub_console, limits, ws};
use crate::metrics::{self, Metrics};
use crate::rebuilds::Rebuilds;
use crate::rest::{self, RestState};

/// Shared by every HTTP handler.
#[derive(Clone)]
pub struct AppState {
    /// The GraphQL schema (holds the [`ApiState`]).
    pub schema: HubSchema,
    /// Runs the operations of GraphQL sockets, sharing one stream between
    /// subscribers of the same subscription.
    pub fanout: Arc<Fanout>,
    /// The database pool.
    pub pool: PgPool,
    /// The feed consumers running (or standing by) in this process.
    pub feeds: Arc<Vec<FeedHandle>>,
    /// Who may do what: the token, allowed origins and hosts.
    pub access: Arc<Access>,
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
    /// How long an event-writing transaction may hold the feed back before
    /// `/health` names it.
    pub feed_stall_warn: Duration,
    /// GraphQL subscriptions open in this process.
    pub subscriptions: Arc<OpenSubscriptions>,
    /// The HTTP connections open, and room for more.
    pub connections: Arc<Connections>,
    /// The WebSockets open, and room for more.
    pub sockets: Arc<SocketSlots>,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<Metrics>,
    /// What the REST event API needs.
    pub rest: RestState,
    /// Turns true when the hub starts shutting down. SSE streams end then,
    /// and WebSockets close with 1001 (going away): the server waits for
    /// answers in progress and for open sockets, and neither ends by itself.
    pub stopping: watch::Receiver<bool>,
}

/// Completes when the hub starts shutting down (see [`AppState::stopping`]).
pub async fn stopped(mut stopping: watch::Receiver<bool>) {
    // An error means the application is gone: stop too.
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

/// The built application, ready to serve.
pub struct App {
    router: Router,
    state: AppState,
    server: ServerLimits,
    stop: watch::Sender<bool>,
}

impl App {
    /// Connects, migrates, starts the feed consumers and builds the router.
    ///
    /// # Errors
    /// When the configuration is unsafe or the database cannot be migrated.
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Self> {
        config.check_exposure().map_err(anyhow::Error::msg)?;
        let access = Arc::new(
            config
                .access
                .access(config.token())
                .map_err(anyhow::Error::msg)?,
        );
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

        let nats = infrastructure::nats::connect(&config.nats.connect_options())
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))
            .with_context(|| {
                format!(
                    "while configuring the NATS connection to {}",
                    infrastructure::redact::url(&config.nats.nats_url)
                )
            })?;
        let connections = nats.connections.clone();
        let nats = nats.client;
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
            connections,
        ));
        let metrics = Arc::new(Metrics::new());
        // Commands and published events append through one queue: those
        // arriving together share a transaction (group commit).
        let appender =
            Appender::with_limits(pool.clone(), appended.clone(), config.append_limits());
        let rest = RestState {
            publisher: Arc::new(IntegrationPublisher::new(appender.clone())),
            read: ReadModels::new(pool.clone()),
            live: live.clone(),
            hub_id: config.hub_id.clone(),
            event_log_progress: event_log.watch(),
            read_your_writes_timeout: Duration::from_millis(config.read_your_writes_timeout_ms),
            sse_keepalive: Duration::from_secs(config.ws.sse_keepalive_secs.max(1)),
        };

        let services = ProjectServices::new(PgProjectLookup::new(pool.clone(), config.port_range));
        let bus = Arc::new(CommandBus::new(pool.clone(), services, appender));
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
            live_readers: Default::default(),
        };
        let subscriptions = Arc::new(OpenSubscriptions::default());
        let door = door_limits(&config.graphql, &config.ws);
        let schema = build_schema(
            api,
            SchemaLimits {
                door,
                introspection: config.graphql.graphql_introspection,
            },
            subscriptions.clone(),
        );
        let fanout = Arc::new(Fanout::new(
            schema.clone(),
            subscriptions.clone(),
            door,
            config.ws.subscriber_buffer.max(1),
            metrics.clone(),
        ));
        let server_limits = config.http.server_limits();
        let (stop, stopping) = watch::channel(false);
        let max_connections = server::connection_cap(server_limits.max_connections);
        let state = AppState {
            connections: Arc::new(Connections::new(max_connections)),
            sockets: Arc::new(SocketSlots::share_of(max_connections)),
            schema,
            fanout,
            pool,
            feeds: Arc::new(vec![projects, event_log, relay, orchestration]),
            access: access.clone(),
            nats,
            nats_url: config.nats.nats_url.clone(),
            ws_init_timeout: Duration::from_secs(config.ws.ws_init_timeout_secs),
            ws_max_message_bytes: config.ws.ws_max_message_bytes,
            max_body_bytes: config.http.max_body_bytes,
            max_batch: config.graphql.graphql_max_batch.max(1),
            feed_stall_warn: Duration::from_secs(config.feed_stall_warn_secs),
            subscriptions,
            metrics,
            rest,
            stopping,
        };
        let router = router(&state, config.http.max_body_bytes);
        Ok(Self {
            router,
            state,
            server: server_limits,
            stop,
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
        let connections = self.state.connections.clone();
        let stop = self.stop;
        let shutdown = async move {
            shutdown.await;
            stop.send_replace(true);
        };
        server::serve(listener, self.router, connections, self.server, shutdown)
            .await
            .context("while serving HTTP")?;
        for feed in self.state.feeds.iter() {
            feed.stop();
        }
        Ok(())
    }
}

/// Every route, inside the layers every request passes (outermost last):
/// body limits, CORS, the host and origin guard, metrics, correlation ids,
/// and `nosniff` on every answer.
fn router(state: &AppState, max_body: usize) -> Router {
    Router::new()
        .route("/", get(hub_console::home))
        .route("/console", get(hub_console::home))
        .route("/console/{page}", get(hub_console::page))
        .route("/console/assets/{file}", get(hub_console::file))
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/console.js", get(console::script))
        .route("/graphql/console.css", get(console::style))
        .route("/graphql/ws", get(ws::graphql_ws))
        .route("/health", get(health::health))
        .route("/health/nats", get(health::nats))
        .route("/metrics", get(metrics::scrape))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            limits::reject_large_bodies(max_body, req, next)
        }))
        .merge(rest::router(max_body))
        .layer(state.access.cors())
        .layer(middleware::from_fn_with_state(
            state.access.clone(),
            access::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track_http,
        ))
        .layer(middleware::from_fn(correlation::correlate))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state.clone())
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
