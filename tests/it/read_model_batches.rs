//! A read model's batch in one statement (its rows and its checkpoint's
//! compare-and-set together), against a real PostgreSQL: it writes when the
//! checkpoint is where the runner left it and nothing at all when someone
//! else moved it, and a runner whose connection broke under that statement
//! reconnects.

use std::sync::Arc;
use std::time::Duration;

use domain::{PortRange, ProjectCommand};
use hub_tests::feed::{
    append_events, command_bus, connect_options, create_project, migrated_pool, quick_config, run,
    RecordingConsumer,
};
use hub_tests::{wait_until, TestDb};
use infrastructure::feed::{
    read_after, spawn_runner, AppendSignal, CheckpointMove, FeedConsumer, FeedPosition,
    PoisonPolicy, RunnerConfig,
};
use projections::{EventLogProjection, ProjectsProjection};
use sqlx::PgPool;

/// Long enough for any event to become visible on a busy test server.
const ARRIVES: Duration = Duration::from_secs(15);

async fn checkpoint_of(pool: &PgPool, consumer: &str) -> (i64, i64) {
    sqlx::query_as("SELECT position, handled FROM feed_checkpoints WHERE consumer = $1")
        .bind(consumer)
        .fetch_one(pool)
        .await
        .expect("read the checkpoint")
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count rows")
}

/// Runs `consumer`'s one-statement batch over every stored event, from
/// `from` (where the runner believes the checkpoint is).
async fn one_statement_batch(
    pool: &PgPool,
    consumer: &impl FeedConsumer,
    from: FeedPosition,
) -> Option<bool> {
    let mut conn = pool.acquire().await.expect("a connection");
    let events = read_after(&mut conn, FeedPosition::START, 100)
        .await
        .expect("read the log");
    let last = events.last().expect("events to handle").feed_position();
    let moving = CheckpointMove::new(consumer.name(), from, last, events.len() as i64);
    consumer
        .handle_in_one_statement(&mut conn, &events, &moving)
        .await
        .expect("the statement runs")
}

#[tokio::test]
async fn a_read_model_batch_writes_its_rows_and_checkpoint_only_together() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, PortRange::default());
    let (id, created) = create_project(&bus, "One Statement").await;
    created.expect("create");
    run(&bus, id, ProjectCommand::StartProject)
        .await
        .expect("request a start");
    for name in [ProjectsProjection::NAME, EventLogProjection::NAME] {
        sqlx::query("INSERT INTO feed_checkpoints (consumer) VALUES ($1)")
            .bind(name)
            .execute(&pool)
            .await
            .expect("a checkpoint row");
    }
    let projects = ProjectsProjection::new();
    let event_log = EventLogProjection::new("test-hub");

    // Someone else moved the checkpoints: the runner's view is stale.
    let stale = FeedPosition {
        transaction_id: 1,
        position: 1,
    };
    assert_eq!(
        one_statement_batch(&pool, &projects, stale).await,
        Some(false)
    );
    assert_eq!(
        one_statement_batch(&pool, &event_log, stale).await,
        Some(false)
    );
    assert_eq!(
        count(&pool, "projects").await,
        0,
        "no row without the checkpoint"
    );
    assert_eq!(
        count(&pool, "event_log").await,
        0,
        "no row without the checkpoint"
    );
    assert_eq!(checkpoint_of(&pool, "projects").await, (0, 0));
    assert_eq!(checkpoint_of(&pool, "event_log").await, (0, 0));

    // From where the checkpoint really is, rows and checkpoint move together.
    let start = FeedPosition::START;
    assert_eq!(
        one_statement_batch(&pool, &projects, start).await,
        Some(true)
    );
    assert_eq!(
        one_statement_batch(&pool, &event_log, start).await,
        Some(true)
    );
    let status: String = sqlx::query_scalar("SELECT status FROM projects WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(&pool)
        .await
        .expect("the project's row");
    assert_eq!(status, "STARTING");
    assert_eq!(count(&pool, "event_log").await, 2);
    let last: i64 = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(&pool)
        .await
        .expect("the last position");
    assert_eq!(checkpoint_of(&pool, "projects").await, (last, 2));
    assert_eq!(checkpoint_of(&pool, "event_log").await, (last, 2));

    // The same batch again, from the old position, is refused and writes nothing.
    assert_eq!(
        one_statement_batch(&pool, &event_log, start).await,
        Some(false)
    );
    assert_eq!(count(&pool, "event_log").await, 2);
    assert_eq!(checkpoint_of(&pool, "event_log").await, (last, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_whose_connection_breaks_reconnects_even_when_its_reads_came_from_the_shared_window(
) {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let signal = AppendSignal::default();
    // Another runner of the same process polls quickly and fills the
    // window the read model reads from.
    let sharer = spawn_runner(
        Arc::new(RecordingConsumer::in_memory("window-sharer")),
        connect_options(&db),
        quick_config(),
        &signal,
    );
    // The read model only reads when woken.
    let read_model = spawn_runner(
        Arc::new(EventLogProjection::new("test-hub")),
        connect_options(&db),
        RunnerConfig {
            min_poll: Duration::from_secs(600),
            max_poll: Duration::from_secs(600),
            poison: PoisonPolicy::Park,
            ..quick_config()
        },
        &signal,
    );
    wait_until("the read model to be active and idle", ARRIVES, || {
        let status = read_model.status();
        async move { (status.active && status.polls > 0).then_some(()) }
    })
    .await;

    // The read model's connection ends while it waits.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE locktype = 'advisory' AND objsubid = 1 \
           AND objid = (hashtext('hub.feed.event_log')::bigint & 4294967295)::oid \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&pool)
    .await
    .expect("end the read model's connection");
    assert_eq!(ended, vec![true]);
    let appended = append_events(&pool, 3).await.len() as i64;
    wait_until("the other runner to read the new events", ARRIVES, || {
        let status = sharer.status();
        async move { (status.handled == appended).then_some(()) }
    })
    .await;

    // Woken, it takes them from the window: the first statement on its
    // broken connection is its own write.
    signal.notify();
    wait_until("the read model to log every event", ARRIVES, || async {
        (count(&pool, "event_log").await == appended).then_some(())
    })
    .await;
}
