//! The shadow table's indexes: built once its bulk is in, and matched
//! with the live table's by their shape.

use sqlx::{Executor as _, PgConnection};

use super::Rebuildable;

/// Builds on the shadow table every index of the live table it lacks
/// (named `<index>__rebuild` until the switch renames them), then makes the
/// one of the live table's primary key the shadow's primary key. Idempotent,
/// so an interrupted rebuild can run it again.
///
/// The indexes are built by `sessions.len()` sessions at once, largest
/// first (by the live table's index sizes), each with `memory_mib /
/// sessions` of sort memory: `CREATE INDEX`es on one table only share a
/// lock, and one session's serial phases (the final merge, writing the
/// index out) overlap the other's sorting. On 1,000,000 events two
/// sessions built `event_log`'s indexes in 2.9-4.2 s, one in 4.5-5.2 s.
/// The primary key is built as a unique index like the others and
/// attached at the end: adding it directly would lock the table against
/// the other session's builds.
pub(super) async fn create_deferred_indexes(
    sessions: &mut [&mut PgConnection],
    projection: &Rebuildable,
    memory_mib: u32,
) -> Result<(), sqlx::Error> {
    let Some(first) = sessions.first_mut() else {
        return Ok(());
    };
    let shadow = projection.shadow_table();
    let existing: Vec<Option<(String, String)>> = table_indexes(first, &shadow)
        .await?
        .iter()
        .map(|(_, def)| index_shape(def))
        .collect();
    let mut statements = Vec::new();
    for (name, definition) in table_indexes(first, projection.table()).await? {
        let shape = index_shape(&definition);
        if existing.contains(&shape) {
            continue;
        }
        let Some((kind, rest)) = shape else { continue };
        statements.push(format!(
            "{kind} IF NOT EXISTS {name}__rebuild ON {shadow} {rest}"
        ));
    }
    let queue = std::sync::Mutex::new(statements.into_iter());
    let queue = &queue;
    let memory_mib = (memory_mib / sessions.len() as u32).max(1);
    let builders = sessions.iter_mut().map(|conn| async move {
        loop {
            let next = queue.lock().expect("the index queue").next();
            let Some(statement) = next else {
                return Ok::<_, sqlx::Error>(());
            };
            // One simple query, one implicit transaction: the server commits
            // the index it finished even if the rebuild is gone by then.
            let batch = format!("SET LOCAL maintenance_work_mem = '{memory_mib}MB'; {statement}");
            let built = (&mut **conn).execute(batch.as_str()).await;
            if let Err(err) = built {
                // The other session finishes the index it is building (an
                // interrupted rebuild keeps it) and starts no other.
                queue
                    .lock()
                    .expect("the index queue")
                    .by_ref()
                    .for_each(drop);
                return Err(err);
            }
        }
    });
    for built in futures::future::join_all(builders).await {
        built?;
    }
    add_primary_key(&mut *sessions[0], projection).await
}

/// Gives the shadow table the live table's primary key (a constraint, as
/// the live table's is), unless it has one: on the shadow's index of the
/// same shape when [`create_deferred_indexes`] built it, else by building
/// it.
pub(super) async fn add_primary_key(
    conn: &mut PgConnection,
    projection: &Rebuildable,
) -> Result<(), sqlx::Error> {
    let shadow = projection.shadow_table();
    let primary_key = |table: String| {
        sqlx::query_as::<_, (String, String)>(
            "SELECT pg_get_constraintdef(c.oid), pg_get_indexdef(c.conindid) FROM pg_constraint c \
             WHERE c.conrelid = $1::regclass AND c.contype = 'p'",
        )
        .bind(table)
    };
    if primary_key(shadow.clone())
        .fetch_optional(&mut *conn)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let Some((definition, index)) = primary_key(projection.table().to_owned())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(());
    };
    let built = table_indexes(conn, &shadow)
        .await?
        .into_iter()
        .find(|(_, def)| index_shape(def) == index_shape(&index));
    let statement = match built {
        Some((name, _)) => {
            format!("ALTER TABLE {shadow} ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {name}")
        }
        None => format!("ALTER TABLE {shadow} ADD {definition}"),
    };
    sqlx::query(&statement).execute(conn).await.map(drop)
}

/// The names and definitions of `table`'s indexes, the largest first.
pub(super) async fn table_indexes(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE schemaname = current_schema() AND tablename = $1 \
         ORDER BY pg_relation_size(format('%I.%I', schemaname, indexname)::regclass) DESC, indexname",
    )
    .bind(table)
    .fetch_all(conn)
    .await
}

/// An index definition without its name and table, to match an index of
/// one table with its copy on another: `CREATE UNIQUE INDEX x ON public.t
/// USING btree (id)` gives `CREATE UNIQUE INDEX|USING btree (id)`.
pub(super) fn index_shape(definition: &str) -> Option<(String, String)> {
    let (head, tail) = definition.split_once(" ON ")?;
    let (kind, _name) = head.rsplit_once(' ')?;
    let (_table, rest) = tail.split_once(' ')?;
    Some((kind.to_owned(), rest.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::index_shape;

    #[test]
    fn an_index_and_its_copy_have_one_shape() {
        assert_eq!(
            index_shape("CREATE UNIQUE INDEX projects_pkey ON public.projects USING btree (id)"),
            index_shape(
                "CREATE UNIQUE INDEX projects__rebuild_pkey ON public.projects__rebuild USING btree (id)"
            )
        );
        assert_ne!(
            index_shape("CREATE INDEX a ON public.t USING btree (id)"),
            index_shape("CREATE UNIQUE INDEX b ON public.t USING btree (id)")
        );
    }
}
