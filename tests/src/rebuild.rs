//! Support for the rebuild tests: the live read models' runners, a
//! generated project history, and snapshots of the read models to compare.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use domain::{PortRange, ProjectCommand, ProjectId, ProjectName};
use infrastructure::feed::{
    consumer_lag, spawn_runner, AppendSignal, FeedHandle, PoisonPolicy, RunnerConfig,
};
use infrastructure::CommandBus;
use projections::{
    rebuild, EventLogProjection, ProjectsProjection, RebuildOptions, RebuildOutcome, Rebuildable,
};
use sqlx::PgPool;

use crate::feed::{command_bus, connect_options, create_project, run};
use crate::{wait_until, TestDb};

/// The hub id the event log is written with.
pub const HUB_ID: &str = "test-hub";

/// The live runners of both read models, as a hub runs them (parking
/// poison events).
pub fn live_runners(db: &TestDb) -> (FeedHandle, FeedHandle) {
    let appended = AppendSignal::default();
    let config = RunnerConfig {
        max_poll: Duration::from_millis(20),
        poison: PoisonPolicy::Park,
        ..RunnerConfig::default()
    };
    (
        spawn_runner(
            Arc::new(ProjectsProjection::new()),
            connect_options(db),
            config.clone(),
            &appended,
        ),
        spawn_runner(
            Arc::new(EventLogProjection::new(HUB_ID)),
            connect_options(db),
            config,
            &appended,
        ),
    )
}

/// A command bus with room for many projects' ports.
pub fn bus(pool: &PgPool) -> CommandBus {
    command_bus(pool, PortRange::new(20000, 29999).expect("a port range"))
}

/// A history of `count` projects: each created, most started, some stopped,
/// renamed or deleted.
pub async fn generate_history(bus: &CommandBus, count: usize) -> Vec<ProjectId> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let (id, created) = create_project(bus, &format!("project {i}")).await;
        created.expect("create a project");
        if i % 5 != 0 {
            run(bus, id, ProjectCommand::StartProject).await.unwrap();
            run(bus, id, ProjectCommand::CompleteStart { request: 2 })
                .await
                .unwrap();
        }
        if i % 3 == 0 {
            let name = ProjectName::parse(&format!("renamed {i}")).unwrap();
            run(bus, id, ProjectCommand::RenameProject { name })
                .await
                .unwrap();
        }
        if i % 5 != 0 && i % 7 == 1 {
            run(bus, id, ProjectCommand::StopProject).await.unwrap();
        }
        if i % 10 == 0 {
            run(bus, id, ProjectCommand::DeleteProject).await.unwrap();
        }
        ids.push(id);
    }
    ids
}

/// Waits until both live read models have handled every event.
pub async fn caught_up(pool: &PgPool) {
    wait_until(
        "the live read models caught up",
        Duration::from_secs(30),
        || async {
            let projects = consumer_lag(pool, ProjectsProjection::NAME).await.ok()?;
            let log = consumer_lag(pool, EventLogProjection::NAME).await.ok()?;
            (projects == 0 && log == 0).then_some(())
        },
    )
    .await;
}

/// Every row of `table` as JSON, in a stable order.
pub async fn snapshot(pool: &PgPool, table: &str, order: &str) -> Vec<serde_json::Value> {
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) FROM {table} t ORDER BY {order}"
    ))
    .fetch_all(pool)
    .await
    .expect("read the table")
}

/// `projects` and `event_log`, row by row.
pub async fn models(pool: &PgPool) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    (
        snapshot(pool, "projects", "id").await,
        snapshot(pool, "event_log", "id").await,
    )
}

/// Rebuilds `projection` to the end with the default options.
///
/// # Panics
/// When the rebuild fails.
pub async fn rebuild_fully(pool: &PgPool, projection: &Rebuildable) -> RebuildOutcome {
    rebuild(pool, projection, &RebuildOptions::default(), |_| {
        ControlFlow::Continue(())
    })
    .await
    .expect("the rebuild succeeds")
}

/// The names of the read models' indexes and constraints.
pub async fn schema_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename IN ('projects', 'event_log') \
         UNION ALL SELECT conname::text FROM pg_constraint \
         WHERE conrelid IN ('projects'::regclass, 'event_log'::regclass) ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Whether `table` exists.
pub async fn table_exists(pool: &PgPool, table: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
}
