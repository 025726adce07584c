//! The `event_log` read model: the queryable history of every event, each
//! in today's shape (older shapes are upcast on the way in).
//!
//! Layout: this module's projection writes batches with one multi-row
//! insert; `copy` writes a rebuild's bulk with a binary `COPY`.

use std::borrow::Cow;

use infrastructure::feed::{
    checkpoint_cte, CheckpointMove, ConsumerError, FeedConsumer, StoredEvent,
};
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments as _, PgConnection};

pub(crate) use copy::EventLogCopy;

mod copy;

/// Feeds `event_log` from the store, one multi-row insert per batch (with
/// the checkpoint's move in the same statement when the runner allows).
#[derive(Debug)]
pub struct EventLogProjection {
    hub_id: String,
    /// The batched insert, on this projection's table.
    insert_sql: String,
    /// The batched insert and the checkpoint's move in one statement.
    one_statement_sql: String,
}

impl EventLogProjection {
    /// The consumer name (its checkpoint key).
    pub const NAME: &'static str = "event_log";

    /// A projection that writes subjects under `hub.<hub_id>.`.
    pub fn new(hub_id: impl Into<String>) -> Self {
        Self::with_table(hub_id, Self::NAME)
    }

    /// A projection writing to `table` (a table shaped like `event_log`,
    /// e.g. the shadow table a rebuild fills) instead of `event_log`.
    /// `table` must be a trusted identifier: it is put into the SQL as is.
    pub fn with_table(hub_id: impl Into<String>, table: &str) -> Self {
        let rows = ROWS.replace("{table}", table);
        Self {
            hub_id: hub_id.into(),
            insert_sql: format!("{rows} {ON_CONFLICT}"),
            one_statement_sql: format!(
                "WITH {}, written AS ({rows} WHERE EXISTS (SELECT 1 FROM moved) {ON_CONFLICT}) \
                 SELECT count(*) FROM moved",
                checkpoint_cte(15)
            ),
        }
    }

    /// The batch's rows as the 14 array parameters of [`ROWS`].
    fn arguments(&self, events: &[StoredEvent]) -> Result<PgArguments, BoxDynError> {
        fn col<T>(events: &[Cow<'_, StoredEvent>], f: impl Fn(&StoredEvent) -> T) -> Vec<T> {
            events.iter().map(|e| f(e)).collect()
        }
        // The log holds every event in today's shape.
        let events: Vec<_> = events.iter().map(StoredEvent::in_current_shape).collect();
        let events = events.as_slice();
        let mut args = PgArguments::default();
        args.add(col(events, |e| e.event_id))?;
        args.add(col(events, |e| e.subject(&self.hub_id)))?;
        args.add(col(events, |e| e.aggregate_type.clone()))?;
        args.add(col(events, |e| e.aggregate_id.clone()))?;
        args.add(col(events, |e| e.sequence))?;
        args.add(col(events, |e| e.event_type.clone()))?;
        args.add(col(events, |e| e.event_version.clone()))?;
        args.add(col(events, |e| e.position))?;
        args.add(col(events, |e| e.transaction_id))?;
        args.add(col(events, |e| e.metadata.correlation()))?;
        args.add(col(events, |e| e.metadata.causation()))?;
        args.add(col(events, |e| {
            serde_json::to_value(&e.metadata.origin).unwrap_or_default()
        }))?;
        args.add(col(events, |e| e.body().clone()))?;
        args.add(col(events, |e| e.recorded_at))?;
        Ok(args)
    }
}

/// The batch's rows, from 14 arrays; `{table}` is replaced by the target
/// table.
///
/// Each row also gets its `timestamp_high_water` (migration 0011): a row
/// after the table's last row in feed order (every row of a batch, as
/// batches come in feed order) gets the latest timestamp of itself, of the
/// batch's rows before it, and of the table's in-order rows (the last
/// row's mark; the table's highest when the last row has none, which is
/// rare: rows written before the column existed). A row before the table's
/// last row (a parked event handled later) gets none: marks stay
/// non-decreasing in feed order, and such rows are searched apart.
const ROWS: &str = "\
INSERT INTO {table} (id, subject, aggregate_type, aggregate_id, sequence, event_type, event_version,
                       position, transaction_id, correlation_id, causation_id, origin, payload, \"timestamp\",
                       timestamp_high_water)
SELECT e.id, e.subject, e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
       e.position, e.transaction_id, e.correlation_id, e.causation_id, e.origin, e.payload, e.at,
       CASE WHEN e.in_order THEN greatest(e.high_water, max(e.at) FILTER (WHERE e.in_order)
                                                        OVER (ORDER BY e.transaction_id, e.position)) END
FROM (SELECT b.*, last.high_water,
             last.position IS NULL OR (b.transaction_id, b.position) > (last.transaction_id, last.position) AS in_order
      FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
                  $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::jsonb[], $13::jsonb[],
                  $14::timestamptz[])
               AS b (id, subject, aggregate_type, aggregate_id, sequence, event_type, event_version,
                     position, transaction_id, correlation_id, causation_id, origin, payload, at)
      LEFT JOIN (SELECT transaction_id, position,
                        coalesce(timestamp_high_water,
                                 (SELECT max(timestamp_high_water) FROM {table})) AS high_water
                 FROM {table} ORDER BY transaction_id DESC, position DESC LIMIT 1) AS last ON true) AS e";

/// An event already in the log (its batch handled again) stays as it is.
const ON_CONFLICT: &str = "ON CONFLICT (id) DO NOTHING";

#[async_trait::async_trait]
impl FeedConsumer for EventLogProjection {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError> {
        sqlx::query_with(&self.insert_sql, self.arguments(events)?)
            .execute(tx)
            .await?;
        Ok(())
    }

    async fn handle_in_one_statement(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
        checkpoint: &CheckpointMove<'_>,
    ) -> Result<Option<bool>, ConsumerError> {
        let args = self.arguments(events)?;
        Ok(Some(
            checkpoint
                .execute(conn, &self.one_statement_sql, args)
                .await?,
        ))
    }
}
