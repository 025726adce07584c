//! The `event_log` read model: the queryable history of every event, each
//! in today's shape (older shapes are upcast on the way in).

use std::borrow::Cow;

use infrastructure::feed::{ConsumerError, FeedConsumer, StoredEvent};
use sqlx::PgConnection;

/// Feeds `event_log` from the store, one multi-row insert per batch.
#[derive(Debug)]
pub struct EventLogProjection {
    hub_id: String,
    /// The batched insert, on this projection's table.
    insert_sql: String,
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
        Self {
            hub_id: hub_id.into(),
            insert_sql: INSERT.replace("{table}", table),
        }
    }
}

/// `{table}` is replaced by the target table.
const INSERT: &str = "\
INSERT INTO {table} (id, subject, aggregate_type, aggregate_id, sequence, event_type, event_version,
                       position, transaction_id, correlation_id, causation_id, origin, payload, \"timestamp\")
SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
                     $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::jsonb[], $13::jsonb[],
                     $14::timestamptz[])
ON CONFLICT (id) DO NOTHING";

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
        fn col<T>(events: &[Cow<'_, StoredEvent>], f: impl Fn(&StoredEvent) -> T) -> Vec<T> {
            events.iter().map(|e| f(e)).collect()
        }
        // The log holds every event in today's shape.
        let events: Vec<_> = events.iter().map(StoredEvent::in_current_shape).collect();
        let events = events.as_slice();
        sqlx::query(&self.insert_sql)
            .bind(col(events, |e| e.event_id))
            .bind(col(events, |e| e.subject(&self.hub_id)))
            .bind(col(events, |e| e.aggregate_type.clone()))
            .bind(col(events, |e| e.aggregate_id.clone()))
            .bind(col(events, |e| e.sequence))
            .bind(col(events, |e| e.event_type.clone()))
            .bind(col(events, |e| e.event_version.clone()))
            .bind(col(events, |e| e.position))
            .bind(col(events, |e| e.transaction_id))
            .bind(col(events, |e| e.metadata.correlation()))
            .bind(col(events, |e| e.metadata.causation()))
            .bind(col(events, |e| {
                serde_json::to_value(&e.metadata.origin).unwrap_or_default()
            }))
            .bind(col(events, |e| e.body().clone()))
            .bind(col(events, |e| e.recorded_at))
            .execute(tx)
            .await?;
        Ok(())
    }
}
