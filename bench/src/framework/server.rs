//! The baseline served the way cqrs-es's demo serves it: a `CqrsFramework`
//! over postgres-es, a `GenericQuery` updating a `PostgresViewRepository`
//! view after each commit, and an axum route that executes the command and
//! answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt as _;
use axum::{Json, Router};
use cqrs_es::persist::GenericQuery;
use cqrs_es::AggregateError;
use postgres_es::{postgres_cqrs, PostgresCqrs, PostgresViewRepository};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::aggregate::{BaselineProject, CreateProject, PortBlocks, ProjectView};

/// postgres-es's tables as its own `db/init.sql` creates them, and the view's.
const SCHEMA: [&str; 3] = [
    "CREATE TABLE events (
        aggregate_type text NOT NULL,
        aggregate_id text NOT NULL,
        sequence bigint CHECK (sequence >= 0) NOT NULL,
        event_type text NOT NULL,
        event_version text NOT NULL,
        payload json NOT NULL,
        metadata json NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
    "CREATE TABLE snapshots (
        aggregate_type text NOT NULL,
        aggregate_id text NOT NULL,
        last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
        current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
        payload json NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
    "CREATE TABLE project_view (
        view_id text NOT NULL,
        version bigint CHECK (version >= 0) NOT NULL,
        payload json NOT NULL,
        PRIMARY KEY (view_id))",
];

/// The same cap as the hub's pool (`HUB_DB_MAX_CONNECTIONS=32` in the bench).
const POOL_CONNECTIONS: u32 = 32;
/// Worker threads of the baseline's runtime: the hub's runtime has one per
/// core, and the bench's machines have two.
const WORKER_THREADS: usize = 2;

/// Creates the tables on an empty database.
///
/// # Errors
/// When a statement fails.
pub async fn create_schema(pool: &PgPool) -> anyhow::Result<()> {
    for statement in SCHEMA {
        sqlx::query(statement)
            .execute(pool)
            .await
            .context("while creating postgres-es's tables")?;
    }
    Ok(())
}

type Cqrs = Arc<PostgresCqrs<BaselineProject>>;

/// `POST /projects` with `{"name": ...}`: executes the command on a new
/// aggregate and answers `201 {"id": ...}`.
async fn create(State(cqrs): State<Cqrs>, Json(command): Json<CreateProject>) -> Response {
    let id = Uuid::new_v4().to_string();
    match cqrs.execute(&id, command).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(AggregateError::UserError(err)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, err.to_string()).into_response()
        }
        Err(AggregateError::AggregateConflict) => StatusCode::CONFLICT.into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// The baseline's server, on a runtime and threads of its own (so it does
/// not share the bench client's), until dropped.
pub struct BaselineServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    view_errors: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BaselineServer {
    /// Serves the baseline on `database_url` (migrated with [`create_schema`])
    /// on a free loopback port.
    ///
    /// # Errors
    /// When the database cannot be reached or the port cannot be bound.
    pub async fn start(database_url: &str) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<String>>();
        let (stop, stopped) = oneshot::channel::<()>();
        let database_url = database_url.to_owned();
        let view_errors = Arc::new(AtomicUsize::new(0));
        let errors = view_errors.clone();
        let thread = std::thread::Builder::new()
            .name("framework-baseline".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(WORKER_THREADS)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err.into()));
                        return;
                    }
                };
                runtime.block_on(serve(database_url, errors, ready_tx, stopped));
            })?;
        let url = ready_rx
            .await
            .context("the baseline's thread ended before it served")??;
        Ok(Self {
            url,
            view_errors,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// View updates that failed so far (`GenericQuery` would drop them
    /// silently otherwise).
    pub fn view_errors(&self) -> usize {
        self.view_errors.load(Ordering::Relaxed)
    }
}

/// The framework, its view and the route, on a bound loopback listener;
/// returns them with the listener's URL.
async fn bind(
    database_url: &str,
    view_errors: Arc<AtomicUsize>,
) -> anyhow::Result<(Router, tokio::net::TcpListener, String)> {
    let pool = PgPoolOptions::new()
        .max_connections(POOL_CONNECTIONS)
        .connect(database_url)
        .await
        .context("while connecting the baseline")?;
    let view = Arc::new(PostgresViewRepository::<ProjectView, BaselineProject>::new(
        "project_view",
        pool.clone(),
    ));
    let mut query = GenericQuery::new(view);
    query.use_error_handler(Box::new(move |_| {
        view_errors.fetch_add(1, Ordering::Relaxed);
    }));
    let cqrs = Arc::new(postgres_cqrs(
        pool,
        vec![Box::new(query)],
        PortBlocks::default(),
    ));
    let app = Router::new()
        .route("/projects", post(create))
        .with_state(cqrs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((app, listener, url))
}

/// Serves until `stopped` fires, after telling `ready` the URL (or why not).
async fn serve(
    database_url: String,
    view_errors: Arc<AtomicUsize>,
    ready: oneshot::Sender<anyhow::Result<String>>,
    stopped: oneshot::Receiver<()>,
) {
    let (app, listener, url) = match bind(&database_url, view_errors).await {
        Ok(bound) => bound,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    let _ = ready.send(Ok(url));
    // Not a graceful shutdown: the bench's client keeps its connections
    // open, and the runtime's end closes them.
    // TCP_NODELAY, as the hub's own server sets it: without it a small
    // answer can wait on Nagle's algorithm and the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::select! {
        served = axum::serve(listener, app) => {
            if let Err(err) = served {
                eprintln!("the framework baseline's server failed: {err}");
            }
        }
        _ = stopped => {}
    }
}

impl Drop for BaselineServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
