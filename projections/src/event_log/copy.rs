//! The bulk of a rebuild of `event_log`, written with `COPY ... (FORMAT
//! binary)` into the shadow table while it has no index: the same rows the
//! projection's insert writes, without parsing arrays, planning a
//! statement, checking a conflict or maintaining an index per row.
//!
//! Only for rows that follow every row the table holds, in feed order, and
//! that it cannot hold yet: each batch of a rebuild's bulk pass (its
//! batches commit with its checkpoint, so a batch is never written twice).
//! The high-water mark of each row is then the latest timestamp of the
//! rows before it and its own, carried from batch to batch.

use chrono::{DateTime, Utc};
use infrastructure::feed::StoredEvent;
use sqlx::PgConnection;

/// The columns, in the order each row sends them.
const COPY: &str =
    "COPY {table} (id, subject, aggregate_type, aggregate_id, sequence, event_type, \
     event_version, position, transaction_id, correlation_id, causation_id, origin, payload, \
     \"timestamp\", timestamp_high_water) FROM STDIN (FORMAT binary)";

/// Columns per row.
const COLUMNS: i16 = 15;

/// The binary format's header: signature, flags, no extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Writes batches of `event_log` rows into a table that follows the
/// projection's shape, carrying the high-water mark from one to the next.
#[derive(Debug)]
pub struct EventLogCopy {
    hub_id: String,
    statement: String,
    high_water: Option<DateTime<Utc>>,
}

impl EventLogCopy {
    /// A writer into `table` (a trusted identifier), continuing from the
    /// highest mark the table holds (read once, with a scan: the table has
    /// no index during the bulk).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn continuing(
        conn: &mut PgConnection,
        hub_id: impl Into<String>,
        table: &str,
    ) -> Result<Self, sqlx::Error> {
        let high_water =
            sqlx::query_scalar(&format!("SELECT max(timestamp_high_water) FROM {table}"))
                .fetch_one(conn)
                .await?;
        Ok(Self {
            hub_id: hub_id.into(),
            statement: COPY.replace("{table}", table),
            high_water,
        })
    }

    /// Writes `events` (in feed order, after every row of the table) on
    /// `conn`, inside the caller's transaction. Returns the mark of the
    /// last row, for [`Self::committed`] once the transaction commits.
    ///
    /// # Errors
    /// When the database refuses a row (a payload JSON cannot hold) or
    /// fails; the transaction is then to be rolled back.
    pub async fn write(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let (data, high_water) = self.encode(events);
        let mut copy = conn.copy_in_raw(&self.statement).await?;
        let sent = copy.send(data).await.map(drop);
        if let Err(err) = sent {
            let _ = copy.abort("the rows could not be sent").await;
            return Err(err);
        }
        copy.finish().await?;
        Ok(high_water)
    }

    /// Takes the mark [`Self::write`] returned, once its rows committed.
    pub fn committed(&mut self, high_water: Option<DateTime<Utc>>) {
        self.high_water = high_water.max(self.high_water);
    }

    /// The batch in the binary format, and the mark after it.
    fn encode(&self, events: &[StoredEvent]) -> (Vec<u8>, Option<DateTime<Utc>>) {
        let mut out = Rows(Vec::with_capacity(HEADER.len() + events.len() * 512));
        out.0.extend_from_slice(HEADER);
        let mut high_water = self.high_water;
        for event in events {
            // The log holds every event in today's shape.
            let event = event.in_current_shape();
            high_water = high_water.max(Some(event.recorded_at));
            out.0.extend_from_slice(&COLUMNS.to_be_bytes());
            out.bytes(event.event_id.as_bytes());
            out.text(&event.subject(&self.hub_id));
            out.text(&event.aggregate_type);
            out.text(&event.aggregate_id);
            out.bigint(event.sequence);
            out.text(&event.event_type);
            out.text(&event.event_version);
            out.bigint(event.position);
            out.bigint(event.transaction_id);
            out.optional_text(event.metadata.correlation().as_deref());
            out.optional_text(event.metadata.causation().as_deref());
            out.jsonb(&event.metadata.origin);
            out.jsonb(event.body());
            out.timestamptz(Some(event.recorded_at));
            out.timestamptz(high_water);
        }
        out.0.extend_from_slice(&(-1i16).to_be_bytes());
        (out.0, high_water)
    }
}

/// Fields in the binary `COPY` format: each a 32-bit length (-1 for NULL)
/// and its value in the type's binary form.
struct Rows(Vec<u8>);

impl Rows {
    fn bytes(&mut self, value: &[u8]) {
        self.0
            .extend_from_slice(&(value.len() as i32).to_be_bytes());
        self.0.extend_from_slice(value);
    }

    fn null(&mut self) {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn text(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    fn optional_text(&mut self, value: Option<&str>) {
        match value {
            Some(text) => self.text(text),
            None => self.null(),
        }
    }

    fn bigint(&mut self, value: i64) {
        self.bytes(&value.to_be_bytes());
    }

    /// `jsonb`: a version byte (1), then the JSON text.
    fn jsonb(&mut self, value: &impl serde::Serialize) {
        let at = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        self.0.push(1);
        // Serializing a `Value` or a plain struct into a buffer cannot fail.
        serde_json::to_writer(&mut self.0, value).expect("JSON serializes");
        let len = (self.0.len() - at - 4) as i32;
        self.0[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// `timestamptz`: microseconds since 2000-01-01 UTC.
    fn timestamptz(&mut self, value: Option<DateTime<Utc>>) {
        match value {
            Some(at) => self.bigint(at.timestamp_micros() - POSTGRES_EPOCH_MICROS),
            None => self.null(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_counts_microseconds_from_the_postgres_epoch() {
        let mut rows = Rows(Vec::new());
        let epoch: DateTime<Utc> = "2000-01-01T00:00:00.000001Z".parse().unwrap();
        rows.timestamptz(Some(epoch));
        assert_eq!(
            rows.0,
            [&8i32.to_be_bytes()[..], &1i64.to_be_bytes()].concat()
        );
    }

    #[test]
    fn jsonb_is_a_version_byte_and_the_text_with_its_length_before_them() {
        let mut rows = Rows(Vec::new());
        rows.jsonb(&serde_json::json!({"a": 1}));
        let text = br#"{"a":1}"#;
        let mut expected = ((text.len() + 1) as i32).to_be_bytes().to_vec();
        expected.push(1);
        expected.extend_from_slice(text);
        assert_eq!(rows.0, expected);
    }
}
