//! The feed's fence, and the transactions that hold it back.
//!
//! Readers read only events of transactions below the fence: no event can
//! still appear there. It waits for the transactions that can still append
//! events (those holding the write lock on `events`, which every appending
//! transaction takes before it gets its id: migration 0007), and for no
//! other. The argument that no committed event is ever skipped is in
//! `docs/EVENT_SYSTEM.md`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The feed's fence: no event can still appear with a transaction id below
/// it. The smallest id among the transactions this statement's snapshot
/// sees running, except those that hold no write lock on `events` in this
/// database when the lock table is read and are still in progress when
/// checked after that (they can never append an event: see migration
/// 0007); the snapshot's `xmax` when there is none. The `CASE` orders the
/// two reads: the lock table first (once, materialized), then each status.
/// The lock table is read only when the snapshot sees a running
/// transaction. Why this never lets an event be skipped is in
/// `docs/EVENT_SYSTEM.md` ("The fence waits only for transactions that can
/// still append events").
pub(crate) const FENCE: &str = "(WITH snap AS (SELECT pg_current_snapshot() AS s), \
       locks AS MATERIALIZED ( \
         SELECT locktype, database, relation, virtualtransaction, transactionid, mode \
         FROM pg_locks WHERE granted), \
       quiet AS ( \
         SELECT t.transactionid FROM locks t \
         WHERE t.locktype = 'transactionid' AND NOT EXISTS ( \
           SELECT 1 FROM locks e \
           WHERE e.virtualtransaction = t.virtualtransaction AND e.locktype = 'relation' \
             AND e.relation = 'events'::regclass AND e.mode = 'RowExclusiveLock' \
             AND e.database = (SELECT oid FROM pg_database WHERE datname = current_database()))) \
     SELECT coalesce( \
       (SELECT min(x) FROM pg_snapshot_xip(snap.s) AS x \
        WHERE NOT CASE WHEN xid(x) IN (SELECT transactionid FROM quiet) \
                       THEN pg_xact_status(x) = 'in progress' ELSE false END), \
       pg_snapshot_xmax(snap.s)) \
     FROM snap)";

/// An open transaction that holds the write lock on `events`: until it
/// ends, readers wait below its transaction id.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct FenceHolder {
    /// Its backend's process id.
    pub pid: i32,
    /// The database it is connected to.
    pub database: Option<String>,
    /// What its client calls itself (`hub` for the hub's own connections).
    pub application_name: Option<String>,
    /// `active`, `idle in transaction`, ...
    pub state: Option<String>,
    /// When its transaction began.
    pub transaction_started: DateTime<Utc>,
    /// How long it has been open, in seconds.
    pub open_seconds: f64,
}

/// The open transactions holding the write lock on `events` in this
/// database, oldest first (at most `limit`).
///
/// # Errors
/// Fails when the query fails.
pub async fn fence_holders(pool: &PgPool, limit: i64) -> Result<Vec<FenceHolder>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.pid, a.datname::text AS database, a.application_name, a.state, \
                a.xact_start AS transaction_started, \
                extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS open_seconds \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'relation' AND l.relation = 'events'::regclass \
           AND l.mode = 'RowExclusiveLock' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND a.xact_start IS NOT NULL \
         ORDER BY a.xact_start LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
