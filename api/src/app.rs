//! Building the application, top to bottom: the configuration's checks,
//! the pool and its migrations, NATS, the appender and the command bus, the
//! feed runners ([`Feeds`]), the handlers' state ([`AppState`]) and the
//! router (each module's `router()`, merged, inside the layers every
//! request passes). Tests build the same application on port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::Router;
use infrastructure::append::Appender;
use infrastructure::feed::AppendSignal;
use infrastructure::lookup::PgProjectLookup;
use infrastructure::nats::{LiveFeed, NatsConnection};
use infrastructure::{CommandBus, IntegrationPublisher};
use projections::{ReadModels, ReadYourWrites};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::{door_limits, ServeConfig};
use crate::feeds::Feeds;
use crate::graphql::door::OpenSubscriptions;
use crate::graphql::fanout::Fanout;
use crate::graphql::{build_schema, SchemaLimits};
use crate::http::access;
use crate::http::server::{self, Connections, ServerLimits, SocketSlots};
use crate::http::{console, correlation, graphql, health, hub_console, limits, ws};
use crate::metrics::{self, Metrics};
use crate::rebuilds::Rebuilds;
use crate::rest;
use crate::state::{AppState, GraphqlState, Hub, Limits, Nats, RestState, Stopping};

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
        let reads = infrastructure::db::connect_lazy(&config.reads.db_config(&config.database))
            .context("while configuring the database pool of reads")?;

        let nats = connect_nats(config).await?;
        let live = Arc::new(LiveFeed::start(
            async_nats::jetstream::new(nats.client.clone()),
            config.stream_settings(),
            config.ws.subscriber_buffer.max(1),
            nats.connections.clone(),
        ));

        // Commands and published events append through one queue: those
        // arriving together share a transaction (group commit).
        let appended = AppendSignal::default();
        let appender =
            Appender::with_limits(pool.clone(), appended.clone(), config.append_limits());
        let lookup = PgProjectLookup::new(pool.clone(), config.port_range);
        let bus = Arc::new(CommandBus::new(pool.clone(), lookup, appender.clone()));

        let feeds = Arc::new(Feeds::start(
            config,
            &pool,
            &appended,
            &nats,
            bus.clone(),
            orchestrator,
        ));
        let rebuilds = Rebuilds::new(pool.clone(), config.hub_id.clone());
        if config.rebuild_outdated {
            rebuild_outdated(&pool, &rebuilds, &config.hub_id);
        }

        let hub = Hub {
            id: config.hub_id.clone(),
            read: ReadModels::new(reads).with_page_scan(config.reads.events_page_scan_rows),
            writes: pool.clone(),
            live,
            read_your_writes: ReadYourWrites::new(
                ReadModels::new(pool.clone()),
                feeds.read_models(),
                Duration::from_millis(config.read_your_writes_timeout_ms),
            ),
            metrics: Arc::new(Metrics::new()),
        };
        let subscriptions = Arc::new(OpenSubscriptions::default());
        let door = door_limits(&config.graphql, &config.ws);
        let schema = build_schema(
            GraphqlState {
                hub: hub.clone(),
                bus,
                rebuilds,
                live_readers: Default::default(),
            },
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
            hub.metrics.clone(),
        ));
        let server_limits = config.http.server_limits();
        let max_connections = server::connection_cap(server_limits.max_connections);
        let (stop, stopping) = watch::channel(false);
        let state = AppState {
            hub,
            schema,
            fanout,
            subscriptions,
            rest: RestState {
                publisher: Arc::new(IntegrationPublisher::new(pool.clone(), appender)),
                sse_keepalive: Duration::from_secs(config.ws.sse_keepalive_secs.max(1)),
            },
            access,
            feeds,
            nats: Nats {
                client: nats.client,
                url: config.nats.nats_url.clone(),
            },
            limits: Limits {
                max_body_bytes: config.http.max_body_bytes,
                max_batch: config.graphql.graphql_max_batch.max(1),
                ws_init_timeout: Duration::from_secs(config.ws.ws_init_timeout_secs),
                ws_max_message_bytes: config.ws.ws_max_message_bytes,
            },
            feed_stall_warn: Duration::from_secs(config.feed_stall_warn_secs),
            connections: Arc::new(Connections::new(max_connections)),
            sockets: Arc::new(SocketSlots::share_of(max_connections)),
            stopping: Stopping::new(stopping),
        };

        let router = router(&state);
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
        self.state.feeds.stop();
        Ok(())
    }
}

/// The NATS client (it connects, and reconnects, in the background).
async fn connect_nats(config: &ServeConfig) -> anyhow::Result<NatsConnection> {
    infrastructure::nats::connect(&config.nats.connect_options())
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))
        .with_context(|| {
            format!(
                "while configuring the NATS connection to {}",
                infrastructure::redact::url(&config.nats.nats_url)
            )
        })
}

/// Every module's routes, inside the layers every request passes
/// (outermost last): body limits (REST has its own, answered in its error
/// shape), CORS, the host and origin guard, metrics, correlation ids, and
/// `nosniff` on every answer. A path or method the hub does not serve is
/// answered in the REST error shape.
fn router(state: &AppState) -> Router {
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .merge(hub_console::router())
        .merge(graphql::router())
        .merge(console::router())
        .merge(ws::router())
        .merge(health::router())
        .merge(metrics::router())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            limits::reject_large_bodies(max_body, req, next)
        }))
        .merge(rest::router(max_body))
        .fallback(rest::no_route)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .layer(state.access.cors())
        .layer(middleware::from_fn_with_state(
            state.access.clone(),
            access::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.hub.metrics.clone(),
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
