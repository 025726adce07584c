//! The `orchestration_requests` table: requests read from the feed, their
//! attempt markers and outcomes (see `migrations/0004_orchestration.sql`).

use domain::RequestKind;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::feed::StoredEvent;

/// Names one request: the project and the sequence of its request event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// The project (aggregate id).
    pub project_id: Uuid,
    /// The sequence of the request event.
    pub sequence: i64,
}

/// A request as the process manager keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedRequest {
    /// Which request.
    pub key: RequestKey,
    /// Start, stop or restart.
    pub kind: RequestKind,
    /// The request event's id (the completion's causation).
    pub event_id: Uuid,
    /// The request's correlation id, if it had one.
    pub correlation_id: Option<String>,
    /// Who asked, if known.
    pub requested_by: Option<String>,
}

impl QueuedRequest {
    /// Whether `event` is a project's start, stop or restart request.
    pub fn is_request(event: &StoredEvent) -> bool {
        request_kind(event).is_some()
    }

    /// The request `event` makes, if it is a project's start, stop or
    /// restart request with a well-formed aggregate id.
    pub fn from_event(event: &StoredEvent) -> Option<Self> {
        let kind = request_kind(event)?;
        let Ok(project_id) = Uuid::parse_str(&event.aggregate_id) else {
            tracing::warn!(aggregate_id = %event.aggregate_id, "a project request with a malformed id is ignored");
            return None;
        };
        let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        Some(Self {
            key: RequestKey {
                project_id,
                sequence: event.sequence,
            },
            kind,
            event_id: event.event_id,
            correlation_id: non_empty(&event.metadata.correlation_id),
            requested_by: non_empty(&event.metadata.origin.user),
        })
    }
}

/// How a request ended, as stored in `outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The orchestrator succeeded and the completion was recorded.
    Completed,
    /// The orchestrator failed (or timed out) and the failure was recorded.
    Failed,
    /// An earlier attempt was interrupted; recorded as a failure without
    /// running anything again.
    Interrupted,
    /// The request was no longer pending: nothing was run or recorded.
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Interrupted => "INTERRUPTED",
            Self::Skipped => "SKIPPED",
        }
    }
}

fn kind_code(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Start => "START",
        RequestKind::Stop => "STOP",
        RequestKind::Restart => "RESTART",
    }
}

fn parse_kind(code: &str) -> Option<RequestKind> {
    match code {
        "START" => Some(RequestKind::Start),
        "STOP" => Some(RequestKind::Stop),
        "RESTART" => Some(RequestKind::Restart),
        _ => None,
    }
}

const ENQUEUE: &str = "\
INSERT INTO orchestration_requests (project_id, request_sequence, kind, event_id, correlation_id, requested_by)
SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::text[], $6::text[])
ON CONFLICT (project_id, request_sequence) DO NOTHING";

/// Records `requests` on `tx` (the feed batch's transaction); requests
/// already recorded (a replay) are left as they are.
///
/// # Errors
/// When the insert fails.
pub async fn enqueue(tx: &mut PgConnection, requests: &[QueuedRequest]) -> Result<(), sqlx::Error> {
    if requests.is_empty() {
        return Ok(());
    }
    fn col<T>(requests: &[QueuedRequest], f: impl Fn(&QueuedRequest) -> T) -> Vec<T> {
        requests.iter().map(f).collect()
    }
    sqlx::query(ENQUEUE)
        .bind(col(requests, |r| r.key.project_id))
        .bind(col(requests, |r| r.key.sequence))
        .bind(col(requests, |r| kind_code(r.kind)))
        .bind(col(requests, |r| r.event_id))
        .bind(col(requests, |r| r.correlation_id.clone()))
        .bind(col(requests, |r| r.requested_by.clone()))
        .execute(tx)
        .await?;
    Ok(())
}

type Row = (Uuid, i64, String, Uuid, Option<String>, Option<String>);

/// Every request not finished yet, oldest first.
///
/// # Errors
/// When the query fails.
pub async fn unfinished(pool: &PgPool) -> Result<Vec<QueuedRequest>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT project_id, request_sequence, kind, event_id, correlation_id, requested_by \
         FROM orchestration_requests WHERE finished_at IS NULL ORDER BY enqueued_at",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(
            |(project_id, sequence, kind, event_id, correlation_id, requested_by)| {
                Some(QueuedRequest {
                    key: RequestKey {
                        project_id,
                        sequence,
                    },
                    kind: parse_kind(&kind)?,
                    event_id,
                    correlation_id,
                    requested_by,
                })
            },
        )
        .collect())
}

/// Marks the attempt at `key` as started by `hub_id`, committed before
/// anything runs. `false` when an attempt was made before (or the request
/// is finished): the caller must not run it.
///
/// # Errors
/// When the update fails; nothing may run then either.
pub async fn claim(pool: &PgPool, key: RequestKey, hub_id: &str) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query(
        "UPDATE orchestration_requests SET attempt_started_at = now(), attempt_hub_id = $3 \
         WHERE project_id = $1 AND request_sequence = $2 \
           AND attempt_started_at IS NULL AND finished_at IS NULL",
    )
    .bind(key.project_id)
    .bind(key.sequence)
    .bind(hub_id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// Records how the request at `key` ended.
///
/// # Errors
/// When the update fails.
pub async fn finish(
    pool: &PgPool,
    key: RequestKey,
    outcome: Outcome,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orchestration_requests SET finished_at = now(), outcome = $3, reason = $4 \
         WHERE project_id = $1 AND request_sequence = $2 AND finished_at IS NULL",
    )
    .bind(key.project_id)
    .bind(key.sequence)
    .bind(outcome.as_str())
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

/// The kind of request `event` is, if it is one.
fn request_kind(event: &StoredEvent) -> Option<RequestKind> {
    if event.aggregate_type != <domain::Project as cqrs_es::Aggregate>::TYPE {
        return None;
    }
    match event.event_type.as_str() {
        "ProjectStartRequested" => Some(RequestKind::Start),
        "ProjectStopRequested" => Some(RequestKind::Stop),
        "ProjectRestartRequested" => Some(RequestKind::Restart),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use cqrs_es::Aggregate as _;
    use domain::Project;

    use super::*;
    use crate::metadata::CommandMetadata;

    fn event(aggregate_type: &str, aggregate_id: &str, event_type: &str) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::nil(),
            position: 7,
            transaction_id: 3,
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
            sequence: 4,
            event_type: event_type.into(),
            event_version: "1.0".into(),
            payload: serde_json::json!({ event_type: {} }),
            metadata: CommandMetadata::from_json(&serde_json::json!({
                "correlation_id": "corr", "user": "ada"
            })),
            recorded_at: Utc::now(),
            unreadable: None,
        }
    }

    #[test]
    fn each_request_event_becomes_a_request_named_by_its_sequence() {
        let id = Uuid::new_v4();
        for (event_type, kind) in [
            ("ProjectStartRequested", RequestKind::Start),
            ("ProjectStopRequested", RequestKind::Stop),
            ("ProjectRestartRequested", RequestKind::Restart),
        ] {
            let request =
                QueuedRequest::from_event(&event(Project::TYPE, &id.to_string(), event_type))
                    .expect("a request");
            assert_eq!(
                request.key,
                RequestKey {
                    project_id: id,
                    sequence: 4
                }
            );
            assert_eq!(request.kind, kind);
            assert_eq!(request.correlation_id.as_deref(), Some("corr"));
            assert_eq!(request.requested_by.as_deref(), Some("ada"));
            assert_eq!(parse_kind(kind_code(kind)), Some(kind));
        }
    }

    #[test]
    fn other_events_and_malformed_ids_are_not_requests() {
        let id = Uuid::new_v4().to_string();
        for stored in [
            event(Project::TYPE, &id, "ProjectStarted"),
            event(Project::TYPE, &id, "ProjectCreated"),
            event("Other", &id, "ProjectStartRequested"),
            event(Project::TYPE, "not-a-uuid", "ProjectStartRequested"),
        ] {
            assert_eq!(QueuedRequest::from_event(&stored), None, "{stored:?}");
        }
    }
}
