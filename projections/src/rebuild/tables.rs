//! The shadow table's lifecycle: created (or found) before a rebuild, and
//! swapped with the live table in one transaction at the end.

use infrastructure::feed::{
    lock_parked, park_unreadable_in_replay, FeedConsumer, FeedPosition, HeldBack,
};
use sqlx::{Connection as _, PgConnection};

use super::indexes::{add_primary_key, index_shape, table_indexes};
use super::{RebuildError, RebuildOptions, Rebuildable};
use infrastructure::feed::read_after as read_batch;

/// Events per read while the switch holds the live table's lock (the tail
/// is short: the rebuild has just caught up).
const TAIL_BATCH: i64 = 10_000;

/// Creates the shadow table and the rebuild's checkpoint, unless both exist
/// from an interrupted rebuild (then it continues from there).
pub(super) async fn prepare_shadow(
    conn: &mut PgConnection,
    projection: &Rebuildable,
) -> Result<(), RebuildError> {
    let shadow = projection.shadow_table();
    let key = projection.rebuild_consumer();
    let mut tx = conn.begin().await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&shadow)
        .fetch_one(&mut *tx)
        .await?;
    let has_checkpoint: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM feed_checkpoints WHERE consumer = $1)")
            .bind(&key)
            .fetch_one(&mut *tx)
            .await?;
    if exists && has_checkpoint {
        tracing::info!(table = %shadow, "continuing an interrupted rebuild");
        return Ok(());
    }
    // A leftover of a switch that did not get to drop the old table.
    sqlx::query(&format!("DROP TABLE IF EXISTS {}", projection.old_table()))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("DROP TABLE IF EXISTS {shadow}"))
        .execute(&mut *tx)
        .await?;
    // At most the primary key now (when the projection's bulk upserts on
    // it); the other indexes are built once the bulk of the log is in.
    sqlx::query(&format!(
        "CREATE TABLE {shadow} (LIKE {} INCLUDING ALL EXCLUDING INDEXES)",
        projection.table()
    ))
    .execute(&mut *tx)
    .await?;
    if projection.bulk_needs_primary_key() {
        add_primary_key(&mut tx, projection).await?;
    }
    sqlx::query(
        "INSERT INTO feed_checkpoints (consumer) VALUES ($1) \
         ON CONFLICT (consumer) DO UPDATE SET transaction_id = '0'::xid8, position = 0, \
             handled = 0, updated_at = now()",
    )
    .bind(&key)
    .execute(&mut *tx)
    .await?;
    // Events an abandoned rebuild parked: this one parks its own.
    sqlx::query("DELETE FROM parked_events WHERE consumer = $1")
        .bind(&key)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Applies the last events and makes the shadow table the live one, in one
/// transaction that also records the projection's code version and drops
/// the live consumer's parked events (the new table has them); returns how
/// many events it applied.
pub(super) async fn switch(
    conn: &mut PgConnection,
    projection: &Rebuildable,
    options: &RebuildOptions,
    consumer: &dyn FeedConsumer,
    held: &mut HeldBack,
    mut checkpoint: FeedPosition,
    mut done: i64,
) -> Result<i64, RebuildError> {
    let live = projection.table();
    let shadow = projection.shadow_table();
    let key = projection.rebuild_consumer();
    let mut tx = conn.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL lock_timeout = '{}ms'",
        options.lock_timeout.as_millis()
    ))
    .execute(&mut *tx)
    .await?;
    // First the consumer's parking lock (its runner takes it before writing
    // the table in each batch, a retry of its parked events too): the
    // parked rows dropped below must not be replayed meanwhile.
    lock_parked(&mut tx, projection.name()).await?;
    // The live runner writes the table in each batch, so while this lock is
    // held it cannot commit one; queries wait for the switch, then read the
    // new table. Views are locked before the table, in the order a query on
    // a view takes them, so such a query cannot deadlock with the switch.
    let views = dependent_views(&mut tx, live).await?;
    let mut locked: Vec<&str> = views.iter().map(|(view, _)| view.as_str()).collect();
    locked.push(live);
    sqlx::query(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        locked.join(", ")
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO feed_checkpoints (consumer) VALUES ($1) ON CONFLICT (consumer) DO NOTHING",
    )
    .bind(projection.name())
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT 1 FROM feed_checkpoints WHERE consumer = $1 FOR UPDATE")
        .bind(projection.name())
        .execute(&mut *tx)
        .await?;
    let mut tail = 0;
    loop {
        let events = read_batch(&mut tx, checkpoint, TAIL_BATCH).await?;
        let Some(last) = events.last().map(|e| e.feed_position()) else {
            break;
        };
        let readable = park_unreadable_in_replay(&mut tx, &key, &events, held).await?;
        consumer
            .handle(&mut tx, &readable)
            .await
            .map_err(|source| RebuildError::Consumer {
                name: projection.name(),
                source,
            })?;
        checkpoint = last;
        tail += events.len() as i64;
    }
    done += tail;
    for (view, _) in &views {
        sqlx::query(&format!("DROP VIEW {view}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!(
        "ALTER TABLE {live} RENAME TO {}",
        projection.old_table()
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!("ALTER TABLE {shadow} RENAME TO {live}"))
        .execute(&mut *tx)
        .await?;
    rename_indexes(&mut tx, live, &projection.old_table()).await?;
    for (view, definition) in &views {
        sqlx::query(&format!("CREATE VIEW {view} AS {definition}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "UPDATE feed_checkpoints \
         SET transaction_id = $2::text::xid8, position = $3, handled = $4, updated_at = now() \
         WHERE consumer = $1",
    )
    .bind(projection.name())
    .bind(checkpoint.transaction_id.to_string())
    .bind(checkpoint.position)
    .bind(done)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM feed_checkpoints WHERE consumer = $1")
        .bind(&key)
        .execute(&mut *tx)
        .await?;
    // The new table was built by this code from every event, including any
    // the live consumer had parked: those rows describe the old table. The
    // events the rebuild parked (their rows cannot be read back) are the
    // new table's.
    sqlx::query("DELETE FROM parked_events WHERE consumer = $1")
        .bind(projection.name())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE parked_events SET consumer = $1 WHERE consumer = $2")
        .bind(projection.name())
        .bind(&key)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO read_model_versions (read_model, version, built_at) VALUES ($1, $2, now()) \
         ON CONFLICT (read_model) DO UPDATE SET version = EXCLUDED.version, built_at = EXCLUDED.built_at",
    )
    .bind(projection.name())
    .bind(projection.code_version())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(tail)
}

/// The views that read `table` directly, with their definitions (which name
/// the table, so recreating them after the rename binds them to the new one).
async fn dependent_views(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT v.oid::regclass::text, pg_get_viewdef(v.oid) \
         FROM pg_depend d \
         JOIN pg_rewrite r ON r.oid = d.objid \
         JOIN pg_class v ON v.oid = r.ev_class \
         WHERE d.refobjid = $1::regclass AND v.relkind = 'v' AND v.oid <> $1::regclass",
    )
    .bind(table)
    .fetch_all(conn)
    .await
}

/// Gives the new live table's indexes the names the old table's had (which
/// migrations and people refer to), moving the old ones out of the way.
/// `CREATE TABLE ... LIKE` named the shadow's indexes after the shadow.
async fn rename_indexes(tx: &mut PgConnection, live: &str, old: &str) -> Result<(), sqlx::Error> {
    let old_indexes = table_indexes(tx, old).await?;
    let new_indexes = table_indexes(tx, live).await?;
    for (old_name, old_def) in &old_indexes {
        let wanted = index_shape(old_def);
        let Some((new_name, _)) = new_indexes
            .iter()
            .find(|(name, def)| name != old_name && index_shape(def) == wanted)
        else {
            continue;
        };
        sqlx::query(&format!("ALTER INDEX {old_name} RENAME TO {old_name}__old"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER INDEX {new_name} RENAME TO {old_name}"))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
