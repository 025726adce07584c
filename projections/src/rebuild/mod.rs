//! Rebuilding a read model by replaying the store, with zero downtime.
//!
//! A rebuild fills a shadow table (`<table>__rebuild`, created `LIKE` the
//! live one) from the whole store in large batches, one transaction per
//! batch with its own checkpoint (consumer `<name>@rebuild`), while the live
//! table keeps answering queries and its runner keeps it current. Once the
//! shadow has caught up, one transaction locks the live table (which stops
//! the live runner: its next batch waits for the lock), applies the last
//! events to the shadow, swaps the tables by renaming them, recreates the
//! views over the table and hands the rebuild's checkpoint to the live
//! consumer. The old table is dropped afterwards.
//!
//! The shadow table starts without its secondary indexes (`event_log`'s
//! without any index: its rows are copied in with a binary `COPY`), and
//! they are built once the bulk of the log is in: building an index over a
//! full table is much cheaper than keeping it up to date row by row (see
//! `replay`).
//!
//! The shadow table and its checkpoint survive a crash or Ctrl-C, so a
//! rebuild started again continues where the last one stopped.
//!
//! The new table is analyzed before it goes live (see `statistics`).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use infrastructure::feed::{held_back, ConsumerError, FeedConsumer};
use sqlx::{Connection as _, PgConnection, PgPool};

use indexes::create_deferred_indexes;
use replay::{Pass, Replay};
use statistics::{analyze, stale_after};
use tables::{prepare_shadow, switch};

mod indexes;
mod replay;
mod statistics;
mod tables;

use crate::status::{checkpoint_of, lag_on};
use crate::{EventLogProjection, ProjectsProjection};

/// The code version of the `projects` projection (see
/// [`Rebuildable::code_version`]).
const PROJECTS_CODE_VERSION: i32 = 1;
/// The code version of the `event_log` projection (2: rows carry their
/// timestamps' high-water mark, migration 0011).
const EVENT_LOG_CODE_VERSION: i32 = 2;

/// A read model that can be rebuilt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rebuildable {
    /// `projects` (and the `project_stats` view over it).
    Projects,
    /// `event_log`, with subjects under `hub.<hub_id>.`.
    EventLog {
        /// The hub id the subjects are written with.
        hub_id: String,
    },
}

impl Rebuildable {
    /// Every rebuildable read model, in the order `rebuild --all` takes them.
    pub fn all(hub_id: &str) -> Vec<Rebuildable> {
        vec![
            Rebuildable::Projects,
            Rebuildable::EventLog {
                hub_id: hub_id.to_owned(),
            },
        ]
    }

    /// The read model called `name` (its consumer name), if there is one.
    pub fn by_name(name: &str, hub_id: &str) -> Option<Rebuildable> {
        Self::all(hub_id).into_iter().find(|p| p.name() == name)
    }

    /// The consumer name of the live projection (its checkpoint key).
    pub fn name(&self) -> &'static str {
        match self {
            Rebuildable::Projects => ProjectsProjection::NAME,
            Rebuildable::EventLog { .. } => EventLogProjection::NAME,
        }
    }

    /// The version of the projection's code. Raise it when a change to the
    /// projection changes what it writes for the same events: a table built
    /// by a lower version is then reported outdated ([`crate::status::outdated`])
    /// and can be rebuilt. The version a live table was built with is kept
    /// in `read_model_versions`, written by the rebuild's switch.
    pub fn code_version(&self) -> i32 {
        match self {
            Rebuildable::Projects => PROJECTS_CODE_VERSION,
            Rebuildable::EventLog { .. } => EVENT_LOG_CODE_VERSION,
        }
    }

    /// Whether the projection's bulk pass needs the shadow table's primary
    /// key: `projects` upserts on it; `event_log`'s rows are copied into a
    /// table without any index, and its key is built with the others.
    fn bulk_needs_primary_key(&self) -> bool {
        matches!(self, Rebuildable::Projects)
    }

    /// The live table.
    pub fn table(&self) -> &'static str {
        self.name()
    }

    /// The table a rebuild fills.
    pub fn shadow_table(&self) -> String {
        format!("{}__rebuild", self.table())
    }

    /// The rebuild's own checkpoint key.
    pub fn rebuild_consumer(&self) -> String {
        format!("{}@rebuild", self.name())
    }

    pub(crate) fn old_table(&self) -> String {
        format!("{}__old", self.table())
    }

    /// The projection writing the live table, as its runner runs it (e.g.
    /// to replay parked events through it).
    pub fn live_consumer(&self) -> Box<dyn FeedConsumer> {
        self.consumer(self.table())
    }

    pub(crate) fn consumer(&self, table: &str) -> Box<dyn FeedConsumer> {
        match self {
            Rebuildable::Projects => Box::new(ProjectsProjection::with_table(table)),
            Rebuildable::EventLog { hub_id } => {
                Box::new(EventLogProjection::with_table(hub_id.clone(), table))
            }
        }
    }
}

/// How a rebuild runs.
#[derive(Clone, Debug)]
pub struct RebuildOptions {
    /// Events per batch (one transaction each).
    pub batch_size: i64,
    /// How long the switch waits for the live table's lock before giving up
    /// (queries on the table wait behind it meanwhile).
    pub lock_timeout: Duration,
    /// Memory PostgreSQL may use in all to sort the indexes the rebuild
    /// builds on the filled shadow table, in MiB, shared by the two
    /// sessions that build them (each one's `maintenance_work_mem`; the
    /// server's default is 64). On 1,000,000 events, 256 in one session
    /// built `event_log`'s indexes in 5.8 s instead of 7.7 s.
    pub index_memory_mib: u32,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            batch_size: 5000,
            lock_timeout: Duration::from_secs(5),
            index_memory_mib: 256,
        }
    }
}

/// How far a rebuild is, after each batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Events in the shadow table so far (including earlier runs).
    pub done: i64,
    /// Events in the store when this run started, plus any appended since
    /// that this run has handled.
    pub total: i64,
    /// Events handled by this run.
    pub this_run: i64,
    /// Time since this run started.
    pub elapsed: Duration,
}

impl Progress {
    /// Events per second handled by this run.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.this_run as f64 / secs
        } else {
            0.0
        }
    }

    /// Time left at the current rate, when there is a rate.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        (rate > 0.0).then(|| Duration::from_secs_f64((self.total - self.done).max(0) as f64 / rate))
    }
}

/// How a rebuild ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RebuildOutcome {
    /// The rebuilt table is live.
    Switched(Progress),
    /// Stopped by the caller after a batch; run again to continue.
    Stopped(Progress),
}

/// Why a rebuild failed. Everything it did so far is kept: run it again.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The projection failed on a batch.
    #[error("projection {name} failed on a batch: {source}")]
    Consumer {
        /// The projection.
        name: &'static str,
        /// What it said.
        source: ConsumerError,
    },
    /// Another rebuild of the same read model is running.
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(&'static str),
    /// The rebuild's checkpoint moved under it.
    #[error("the checkpoint of {0} moved during the rebuild")]
    LostCheckpoint(String),
}

/// Rebuilds `projection` from the store and switches to the result.
///
/// Continues an interrupted rebuild when its shadow table and checkpoint
/// exist. `on_batch` is called after each committed batch; returning
/// [`ControlFlow::Break`] stops the rebuild there (it can be continued later).
///
/// # Errors
/// Fails when the database or the projection fails, or another rebuild of
/// the same read model is running.
#[tracing::instrument(skip_all, fields(projection = projection.name()))]
pub async fn rebuild(
    pool: &PgPool,
    projection: &Rebuildable,
    options: &RebuildOptions,
    mut on_batch: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<RebuildOutcome, RebuildError> {
    // A connection of its own: the rebuild lock lives as long as it does.
    let mut conn = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(format!("hub.rebuild.{}", projection.name()))
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        return Err(RebuildError::AlreadyRunning(projection.name()));
    }
    // Everything written here can be written again from the store. The
    // notices of `DROP ... IF EXISTS` are noise in a rebuild's output.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    sqlx::query("SET client_min_messages = warning")
        .execute(&mut conn)
        .await?;
    // A second connection reads the next batch while the first writes one.
    let mut reader = pool.acquire().await?;
    let result = run(&mut conn, &mut reader, projection, options, &mut on_batch).await;
    let _ = conn.close().await;
    result
}

async fn run(
    conn: &mut PgConnection,
    reader: &mut PgConnection,
    projection: &Rebuildable,
    options: &RebuildOptions,
    on_batch: &mut impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<RebuildOutcome, RebuildError> {
    let started = Instant::now();
    let key = projection.rebuild_consumer();
    prepare_shadow(conn, projection).await?;
    let (checkpoint, done) = checkpoint_of(conn, &key).await?;
    let (remaining, _) = lag_on(conn, &key).await?;
    let progress = Progress {
        done,
        total: done + remaining,
        this_run: 0,
        elapsed: Duration::ZERO,
    };
    let held = held_back(conn, &key).await?;
    let mut replay = Replay::new(conn, projection, held, checkpoint, progress, started).await?;
    tracing::info!(done, total = replay.progress.total, "rebuild started");
    // Secondary indexes are built once at the end: much cheaper than keeping
    // them up to date row by row. Then the events that arrived meanwhile.
    for pass in [Pass::Bulk, Pass::AfterIndexes] {
        if replay
            .catch_up(pass, conn, reader, projection, options, on_batch)
            .await?
            .is_break()
        {
            tracing::info!(
                done = replay.progress.done,
                "rebuild stopped; run it again to continue"
            );
            return Ok(RebuildOutcome::Stopped(replay.progress));
        }
        if pass == Pass::Bulk {
            tracing::info!(table = %projection.shadow_table(), "creating the secondary indexes");
            create_deferred_indexes(
                &mut [&mut *conn, &mut *reader],
                projection,
                options.index_memory_mib,
            )
            .await?;
        }
    }
    // Statistics before the switch: queries on the new table are planned
    // well from the first one.
    analyze(conn, &projection.shadow_table()).await?;
    let analyzed = replay.progress.done;
    let tail = switch(
        conn,
        projection,
        options,
        replay.consumer.as_ref(),
        &mut replay.held,
        replay.checkpoint,
        replay.progress.done,
    )
    .await?;
    let mut progress = replay.progress;
    progress.this_run += tail;
    progress.done += tail;
    progress.total = progress.total.max(progress.done);
    progress.elapsed = started.elapsed();
    sqlx::query(&format!("DROP TABLE IF EXISTS {}", projection.old_table()))
        .execute(&mut *conn)
        .await?;
    if stale_after(analyzed, tail) {
        analyze(conn, projection.table()).await?;
    }
    tracing::info!(events = progress.done, "rebuild switched over");
    Ok(RebuildOutcome::Switched(progress))
}
