//! Support for tests of the event feed and the store: a migrated database,
//! events written straight into `events` (as another process would), feed
//! consumers that record what they were given, and a command bus on the real
//! `Project` aggregate.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use domain::{PortRange, ProjectCommand, ProjectId, ProjectName, ProjectPath};
use infrastructure::append::Appender;
use infrastructure::feed::{
    AppendSignal, ConsumerError, FeedConsumer, PoisonPolicy, RunnerConfig, StoredEvent,
};
use infrastructure::lookup::PgProjectLookup;
use infrastructure::{CommandBus, CommandError, CommandMetadata, Executed, Origin};
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::TestDb;

/// A pool on `db` with the hub's schema applied.
pub async fn migrated_pool(db: &TestDb) -> PgPool {
    crate::init_logging();
    let pool = db.pool().await;
    infrastructure::db::migrate(&pool)
        .await
        .expect("apply the migrations");
    pool
}

/// How a runner connects to `db` (each runner opens its own connection).
pub fn connect_options(db: &TestDb) -> PgConnectOptions {
    db.url().parse().expect("a valid database URL")
}

/// A runner config that reacts within milliseconds: short polls, a quick
/// lock retry and a short backoff.
pub fn quick_config() -> RunnerConfig {
    RunnerConfig {
        batch_size: 100,
        min_poll: Duration::from_millis(2),
        max_poll: Duration::from_millis(50),
        lock_retry: Duration::from_millis(100),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        durable_commits: false,
        checkpoint_delay: Duration::from_millis(100),
        poison: PoisonPolicy::Halt,
        max_attempts: 5,
    }
}

/// Where an event written by [`insert_event`] landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// The event's id.
    pub event_id: Uuid,
    /// Its insert position.
    pub position: i64,
    /// The transaction that wrote it.
    pub transaction_id: i64,
}

/// Inserts one `Test`/`Tested` event on `conn` (inside whatever transaction
/// is open there), the way a process that bypasses the command bus would.
pub async fn insert_event(conn: &mut PgConnection) -> Inserted {
    let (event_id, position, transaction_id): (Uuid, i64, i64) = sqlx::query_as(
        "INSERT INTO events \
             (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Test', $1, 1, 'Tested', '1.0', '{\"Tested\":{}}', '{}') \
         RETURNING event_id, position, transaction_id::text::bigint",
    )
    .bind(Uuid::new_v4().to_string())
    .fetch_one(conn)
    .await
    .expect("insert a test event");
    Inserted {
        event_id,
        position,
        transaction_id,
    }
}

/// Stores the creation of project `id` as build 0.9 wrote it (event version
/// `0.9`, the ports as flat fields: 21000-21003), as an older build would
/// have left it in the store.
pub async fn store_0_9_project_created(pool: &PgPool, id: ProjectId) {
    sqlx::query(
        "INSERT INTO events \
             (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Project', $1, 1, 'ProjectCreated', '0.9', $2, '{}')",
    )
    .bind(id.to_string())
    .bind(serde_json::json!({"ProjectCreated": {
        "project_id": id,
        "name": "Legacy project",
        "slug": "legacy-project",
        "path": "/srv/legacy",
        "backend_port": 21000,
        "frontend_port": 21001,
        "postgres_port": 21002,
        "redis_port": 21003
    }}))
    .execute(pool)
    .await
    .expect("store the old-shaped event");
}

/// Inserts event number `sequence` of the `Test` aggregate `aggregate_id`
/// on `conn`, like [`insert_event`].
pub async fn insert_aggregate_event(
    conn: &mut PgConnection,
    aggregate_id: &str,
    sequence: i64,
) -> Inserted {
    let (event_id, position, transaction_id): (Uuid, i64, i64) = sqlx::query_as(
        "INSERT INTO events \
             (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Test', $1, $2, 'Tested', '1.0', '{\"Tested\":{}}', '{}') \
         RETURNING event_id, position, transaction_id::text::bigint",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .fetch_one(conn)
    .await
    .expect("insert a test event");
    Inserted {
        event_id,
        position,
        transaction_id,
    }
}

/// Commits `count` test events, one transaction each; returns their ids in
/// commit order.
pub async fn append_events(pool: &PgPool, count: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(count);
    let mut conn = pool.acquire().await.expect("a connection");
    for _ in 0..count {
        ids.push(insert_event(&mut conn).await.event_id);
    }
    ids
}

/// Every event id in the store, in feed order.
pub async fn stored_event_ids(pool: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT event_id FROM events ORDER BY transaction_id, position")
        .fetch_all(pool)
        .await
        .expect("read the event ids")
}

/// The `handled` count of a consumer's checkpoint row (0 without one).
pub async fn checkpoint_handled(pool: &PgPool, consumer: &str) -> i64 {
    sqlx::query_scalar("SELECT handled FROM feed_checkpoints WHERE consumer = $1")
        .bind(consumer)
        .fetch_optional(pool)
        .await
        .expect("read the checkpoint")
        .unwrap_or(0)
}

/// The table a [`RecordingConsumer`] with a table writes to.
pub const HANDLED_TABLE: &str = "test_handled_events";

/// Creates [`HANDLED_TABLE`]: one row per event handed to a recording
/// consumer, in the order it was handed over. No unique constraint, so a
/// duplicate delivery shows up as a second row instead of an error.
pub async fn create_handled_table(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE test_handled_events ( \
             seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             instance text NOT NULL, \
             event_id uuid NOT NULL)",
    )
    .execute(pool)
    .await
    .expect("create the handled-events table");
}

/// The rows of [`HANDLED_TABLE`] as `(instance, event_id)`, in insert order.
pub async fn handled_rows(pool: &PgPool) -> Vec<(String, Uuid)> {
    sqlx::query_as("SELECT instance, event_id FROM test_handled_events ORDER BY seq")
        .fetch_all(pool)
        .await
        .expect("read the handled events")
}

/// A consumer that remembers every event id it was given, in memory and,
/// if asked, in [`HANDLED_TABLE`] inside the batch's transaction.
///
/// The in-memory list only grows when the batch's own writes succeeded; it
/// cannot know whether the runner then committed.
pub struct RecordingConsumer {
    name: String,
    instance: String,
    to_table: bool,
    seen: Mutex<Vec<Uuid>>,
}

impl RecordingConsumer {
    /// Records in memory only, under consumer name `name`.
    pub fn in_memory(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            instance: String::new(),
            to_table: false,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Records in memory and in [`HANDLED_TABLE`], tagging rows with `instance`.
    pub fn in_table(name: &str, instance: &str) -> Self {
        Self {
            instance: instance.to_owned(),
            to_table: true,
            ..Self::in_memory(name)
        }
    }

    /// The event ids handed over so far, in order.
    pub fn seen(&self) -> Vec<Uuid> {
        self.seen.lock().expect("seen lock").clone()
    }

    async fn record(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError> {
        let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
        if self.to_table {
            sqlx::query(
                "INSERT INTO test_handled_events (instance, event_id) \
                 SELECT $1, id FROM unnest($2::uuid[]) WITH ORDINALITY AS batch(id, n) ORDER BY n",
            )
            .bind(&self.instance)
            .bind(&ids)
            .execute(tx)
            .await?;
        }
        self.seen.lock().expect("seen lock").extend(ids);
        Ok(())
    }
}

#[async_trait::async_trait]
impl FeedConsumer for RecordingConsumer {
    fn name(&self) -> &str {
        &self.name
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError> {
        self.record(tx, events).await
    }
}

/// A recording consumer (with a table) that fails its first `failures`
/// batches after writing them, so the runner must roll those writes back.
pub struct FlakyConsumer {
    inner: RecordingConsumer,
    failures: u32,
    attempts: AtomicU32,
}

/// The message a [`FlakyConsumer`] fails with.
pub const FLAKY_ERROR: &str = "deliberate test failure";

impl FlakyConsumer {
    /// Fails `failures` times (`u32::MAX`: always), then records.
    pub fn new(name: &str, failures: u32) -> Self {
        Self {
            inner: RecordingConsumer::in_table(name, "flaky"),
            failures,
            attempts: AtomicU32::new(0),
        }
    }

    /// Batches handed over so far, failed or not.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// The ids of the batches that succeeded.
    pub fn seen(&self) -> Vec<Uuid> {
        self.inner.seen()
    }
}

#[async_trait::async_trait]
impl FeedConsumer for FlakyConsumer {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if attempt <= self.failures {
            // Write first, then fail: the runner must roll the write back.
            sqlx::query(
                "INSERT INTO test_handled_events (instance, event_id) VALUES ('failed', $1)",
            )
            .bind(events[0].event_id)
            .execute(tx)
            .await?;
            return Err(format!("{FLAKY_ERROR} #{attempt}").into());
        }
        self.inner.record(tx, events).await
    }
}

/// The message a [`BreakableConsumer`] fails with on a poison event.
pub const POISON_ERROR: &str = "deliberate failure on a poison event";

/// A recording consumer (with a table) that can be broken two ways: it
/// fails every batch holding one of its poison events (a bug: after writing,
/// so the runner must roll back), or every batch with an I/O error as if the
/// database were unreachable (an outage).
pub struct BreakableConsumer {
    inner: RecordingConsumer,
    poison: Mutex<HashSet<Uuid>>,
    outage: AtomicBool,
    attempts: AtomicU32,
}

impl BreakableConsumer {
    /// A consumer named `name` that works until told otherwise.
    pub fn new(name: &str) -> Self {
        Self {
            inner: RecordingConsumer::in_table(name, name),
            poison: Mutex::new(HashSet::new()),
            outage: AtomicBool::new(false),
            attempts: AtomicU32::new(0),
        }
    }

    /// Fails every batch that holds `event`.
    pub fn poison(&self, event: Uuid) {
        self.poison.lock().expect("poison lock").insert(event);
    }

    /// The fix: no event is poison any more.
    pub fn cure(&self) {
        self.poison.lock().expect("poison lock").clear();
    }

    /// Starts or ends the simulated outage.
    pub fn set_outage(&self, down: bool) {
        self.outage.store(down, Ordering::SeqCst);
    }

    /// Batches handed over so far, failed or not.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl FeedConsumer for BreakableConsumer {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.outage.load(Ordering::SeqCst) {
            return Err(Box::new(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "simulated outage",
            ))));
        }
        let poisoned = {
            let poison = self.poison.lock().expect("poison lock");
            events
                .iter()
                .find(|e| poison.contains(&e.event_id))
                .map(|e| e.event_id)
        };
        self.inner.record(tx, events).await?;
        match poisoned {
            Some(event) => Err(format!("{POISON_ERROR} {event}").into()),
            None => Ok(()),
        }
    }
}

/// A command bus on `pool` that allocates ports from `ports`.
pub fn command_bus(pool: &PgPool, ports: PortRange) -> CommandBus {
    CommandBus::new(
        pool.clone(),
        PgProjectLookup::new(pool.clone(), ports),
        Appender::start(pool.clone(), AppendSignal::default()),
    )
}

/// Metadata as a test client's request would carry it.
pub fn metadata() -> CommandMetadata {
    CommandMetadata::for_request(
        "corr",
        Origin {
            hub_id: "test-hub".into(),
            service: "hub-tests".into(),
            user: "tester".into(),
        },
    )
}

/// Creates a project named `name` with a fresh id; returns the id with the outcome.
pub async fn create_project(
    bus: &CommandBus,
    name: &str,
) -> (ProjectId, Result<Executed, CommandError>) {
    let id = ProjectId::new();
    create_with_id(bus, id, name, &format!("/srv/{id}")).await
}

/// Creates project `name` in directory `path` through `bus`; returns its id
/// and the outcome.
pub async fn create_project_at(
    bus: &CommandBus,
    name: &str,
    path: &str,
) -> (ProjectId, Result<Executed, CommandError>) {
    create_with_id(bus, ProjectId::new(), name, path).await
}

async fn create_with_id(
    bus: &CommandBus,
    id: ProjectId,
    name: &str,
    path: &str,
) -> (ProjectId, Result<Executed, CommandError>) {
    let command = ProjectCommand::CreateProject {
        project_id: id,
        name: ProjectName::parse(name).expect("a valid project name"),
        path: ProjectPath::parse(path).expect("a valid project path"),
    };
    (id, bus.execute(id, command, None, &metadata()).await)
}

/// Runs `command` on project `id` with test metadata.
pub async fn run(
    bus: &CommandBus,
    id: ProjectId,
    command: ProjectCommand,
) -> Result<Executed, CommandError> {
    bus.execute(id, command, None, &metadata()).await
}
