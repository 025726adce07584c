//! An event as the feed reads it from the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::fence::FENCE;
use crate::metadata::CommandMetadata;

/// A point in the feed: the order in which events become visible to readers.
///
/// Events are ordered by their writing transaction first and their insert
/// position second, which is the order that never lets a late commit slip
/// behind a reader (see the `events` table's comments).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct FeedPosition {
    /// The writing transaction's id (`xid8`).
    pub transaction_id: i64,
    /// The event's global insert position.
    pub position: i64,
}

impl FeedPosition {
    /// Before the first event.
    pub const START: FeedPosition = FeedPosition {
        transaction_id: 0,
        position: 0,
    };
}

/// One committed event with its store coordinates and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Stable public id.
    pub event_id: Uuid,
    /// Global insert position.
    pub position: i64,
    /// Writing transaction.
    pub transaction_id: i64,
    /// e.g. `Project`.
    pub aggregate_type: String,
    /// The aggregate instance (a project id for projects).
    pub aggregate_id: String,
    /// 1-based sequence within the aggregate.
    pub sequence: i64,
    /// e.g. `ProjectCreated`.
    pub event_type: String,
    /// e.g. `1.0`.
    pub event_version: String,
    /// The serialized domain event (externally tagged: `{"ProjectCreated": {...}}`).
    pub payload: serde_json::Value,
    /// Correlation, causation, origin.
    pub metadata: CommandMetadata,
    /// When the row was written.
    pub recorded_at: DateTime<Utc>,
    /// Set when the row's payload or metadata cannot be read back (then
    /// `payload` is null): why. Runners park such an event for every
    /// consumer instead of handing it over (see [`super::PoisonPolicy`]).
    pub unreadable: Option<String>,
}

impl StoredEvent {
    /// Where this event sits in the feed.
    pub fn feed_position(&self) -> FeedPosition {
        FeedPosition {
            transaction_id: self.transaction_id,
            position: self.position,
        }
    }

    /// The event's own fields, without the enum tag the store keeps around
    /// them; for an integration event, the payload its publisher gave.
    pub fn body(&self) -> &serde_json::Value {
        let fields = match &self.payload {
            serde_json::Value::Object(map) if map.len() == 1 => {
                map.get(&self.event_type).unwrap_or(&self.payload)
            }
            other => other,
        };
        if self.is_integration_event() {
            return fields.get("payload").unwrap_or(fields);
        }
        fields
    }

    fn is_integration_event(&self) -> bool {
        self.aggregate_type == <domain::IntegrationEvent as cqrs_es::Aggregate>::TYPE
    }

    /// An integration event's own subject after `hub.<hub_id>.`, when it
    /// has a valid one.
    fn integration_subject_tail(&self) -> Option<String> {
        if !self.is_integration_event() {
            return None;
        }
        let stored = self
            .payload
            .get(&self.event_type)?
            .get("subject")?
            .as_str()?;
        let subject = domain::EventSubject::parse(stored).ok()?;
        Some(subject.local_part().to_owned())
    }

    /// The subject domain token: the aggregate type in lower case (`project`).
    pub fn domain(&self) -> String {
        self.aggregate_type.to_ascii_lowercase()
    }

    /// The subject action token: the event type without the aggregate type
    /// prefix, in snake case (`ProjectCreated` -> `created`,
    /// `ProjectStartRequested` -> `start_requested`).
    pub fn action(&self) -> String {
        let rest = self
            .event_type
            .strip_prefix(self.aggregate_type.as_str())
            .filter(|rest| !rest.is_empty())
            .unwrap_or(&self.event_type);
        snake_case(rest)
    }

    /// `hub.<hub_id>.<domain>.<action>`. An integration event keeps the
    /// subject its publisher chose, under this hub's id (so it stays inside
    /// the hub's stream even if the hub id changed since).
    pub fn subject(&self, hub_id: &str) -> String {
        if let Some(tail) = self.integration_subject_tail() {
            return format!("hub.{hub_id}.{tail}");
        }
        format!("hub.{hub_id}.{}.{}", self.domain(), self.action())
    }

    /// Reads a row selected with [`EVENT_COLUMNS`]. A payload or metadata
    /// that is not readable JSON (a number out of range, say) does not fail
    /// the read: the event comes back [`StoredEvent::unreadable`].
    pub(crate) fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let mut unreadable = None;
        let mut json = |column: &str| -> Result<serde_json::Value, sqlx::Error> {
            let text: &str = row.try_get(column)?;
            Ok(serde_json::from_str(text).unwrap_or_else(|err| {
                unreadable.get_or_insert_with(|| {
                    format!("the stored event's {column} cannot be read back as JSON: {err}")
                });
                serde_json::Value::Null
            }))
        };
        let payload = json("payload")?;
        let metadata = json("metadata")?;
        Ok(Self {
            event_id: row.try_get("event_id")?,
            position: row.try_get("position")?,
            transaction_id: row.try_get("transaction_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload,
            metadata: CommandMetadata::from_json(&metadata),
            recorded_at: row.try_get("recorded_at")?,
            unreadable,
        })
    }
}

fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Columns of `events` in the shape [`StoredEvent::from_row`] reads. The
/// JSON columns come as text, parsed by the hub, so that one that cannot
/// be parsed is that event's problem, not the whole read's.
pub(crate) const EVENT_COLUMNS: &str =
    "event_id, position, transaction_id::text::bigint AS transaction_id, \
     aggregate_type, aggregate_id, sequence, event_type, event_version, \
     payload::text AS payload, metadata::text AS metadata, recorded_at";

/// Reads up to `limit` committed events after `after`, in feed order.
///
/// Only events below the fence (`fence::FENCE`) are read: every event of a
/// transaction that can still append events sorts above it, so an event
/// whose transaction commits late is never skipped; it is simply read on a
/// later call. Transactions that cannot append events (in other databases,
/// or writing other tables) hold nothing back.
///
/// # Errors
/// Fails when the query fails.
pub async fn read_after(
    conn: &mut PgConnection,
    after: FeedPosition,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    // ORDER BY names the table's columns: the select list's
    // `transaction_id` alias (a bigint) would otherwise win and the sort could
    // not use the feed-order index.
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events \
         WHERE (transaction_id, position) > ($1::text::xid8, $2) \
           AND transaction_id < {FENCE} \
         ORDER BY events.transaction_id, events.position \
         LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// Reads up to `limit` events of one aggregate after sequence `after`
/// (and at most `up_to`, when given), in sequence order: the indexed read
/// of one aggregate's history, by the store's primary key.
///
/// No fence is needed: an aggregate's committed sequences have no holes
/// (the writer of sequence `n + 1` read `n` first, and the primary key
/// refuses a second `n + 1`), so what this reads is final.
///
/// # Errors
/// Fails when the query fails.
pub async fn read_aggregate(
    conn: &mut PgConnection,
    aggregate_type: &str,
    aggregate_id: &str,
    after: i64,
    up_to: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 \
           AND ($4::bigint IS NULL OR sequence <= $4) \
         ORDER BY sequence \
         LIMIT $5"
    );
    let rows = sqlx::query(&sql)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(after)
        .bind(up_to)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// The feed position of the last event a reader can read now (the last
/// one below the fence), or [`FeedPosition::START`] when there is none: a
/// reader that starts after it reads exactly the events that become
/// readable from now on.
///
/// # Errors
/// Fails when the query fails.
pub async fn last_readable(conn: &mut PgConnection) -> Result<FeedPosition, sqlx::Error> {
    let sql = format!(
        "SELECT events.transaction_id::text::bigint, events.position FROM events \
         WHERE transaction_id < {FENCE} \
         ORDER BY events.transaction_id DESC, events.position DESC \
         LIMIT 1"
    );
    let last: Option<(i64, i64)> = sqlx::query_as(&sql).fetch_optional(conn).await?;
    let Some((transaction_id, position)) = last else {
        return Ok(FeedPosition::START);
    };
    Ok(FeedPosition {
        transaction_id,
        position,
    })
}

/// How many committed events a consumer has not handled yet.
///
/// # Errors
/// Fails when the query fails.
pub async fn consumer_lag<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    consumer: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "WITH checkpoint AS ( \
             SELECT transaction_id, position FROM ( \
                 SELECT transaction_id, position, 0 AS preference FROM feed_checkpoints WHERE consumer = $1 \
                 UNION ALL SELECT '0'::xid8, 0::bigint, 1) AS candidates \
             ORDER BY preference LIMIT 1) \
         SELECT count(*) FROM events e, checkpoint c \
         WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)",
    )
    .bind(consumer)
    .fetch_one(executor)
    .await
}

/// The feed position of the event at global `position`, if it exists.
///
/// # Errors
/// Fails when the query fails.
pub async fn position_of(
    pool: &sqlx::PgPool,
    position: i64,
) -> Result<Option<FeedPosition>, sqlx::Error> {
    let tx: Option<i64> =
        sqlx::query_scalar("SELECT transaction_id::text::bigint FROM events WHERE position = $1")
            .bind(position)
            .fetch_optional(pool)
            .await?;
    Ok(tx.map(|transaction_id| FeedPosition {
        transaction_id,
        position,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::Aggregate as _;
    use domain::Project;

    fn event(aggregate_type: &str, event_type: &str) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::nil(),
            position: 1,
            transaction_id: 1,
            aggregate_type: aggregate_type.into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: event_type.into(),
            event_version: "1.0".into(),
            payload: serde_json::json!({ event_type: {"x": 1} }),
            metadata: CommandMetadata::from_json(&serde_json::json!({})),
            recorded_at: Utc::now(),
            unreadable: None,
        }
    }

    #[test]
    fn subjects_are_built_from_the_aggregate_and_event_type() {
        assert_eq!(
            event(Project::TYPE, "ProjectCreated").subject("local-hub"),
            "hub.local-hub.project.created"
        );
        assert_eq!(
            event(Project::TYPE, "ProjectStartRequested").subject("h"),
            "hub.h.project.start_requested"
        );
    }

    #[test]
    fn integration_events_keep_their_own_subject_and_payload() {
        let mut stored = event("IntegrationEvent", "IntegrationEventPublished");
        stored.payload = serde_json::json!({"IntegrationEventPublished": {
            "subject": "hub.old-hub.audit.security.completed",
            "payload": {"status": "ok"}
        }});
        assert_eq!(
            stored.subject("local-hub"),
            "hub.local-hub.audit.security.completed"
        );
        assert_eq!(stored.body(), &serde_json::json!({"status": "ok"}));
        stored.payload =
            serde_json::json!({"IntegrationEventPublished": {"subject": "bad subject"}});
        assert_eq!(
            stored.subject("h"),
            "hub.h.integrationevent.published",
            "a stored subject that is not valid falls back to the default form"
        );
    }

    #[test]
    fn the_body_is_the_payload_without_its_tag() {
        assert_eq!(
            event(Project::TYPE, "ProjectCreated").body(),
            &serde_json::json!({"x": 1})
        );
    }
}
