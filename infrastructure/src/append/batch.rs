//! One batch of commits written by `hub_append_batch` (migration 0008), and
//! each commit's outcome sent back to its caller.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::{AppendError, Appended, Commit, Request};
use crate::error::is_unavailable;
use crate::feed::{AppendSignal, FeedPosition};

/// Deadlock detected: two batches took row locks in opposite orders. The
/// one PostgreSQL aborted wrote nothing and may simply run again.
const DEADLOCK: &str = "40P01";

/// `hub_append_batch`'s answer for one commit.
#[derive(sqlx::FromRow)]
struct Row {
    commit_ordinal: i32,
    commit_appended: bool,
    commit_event_ids: Option<Vec<Uuid>>,
    commit_positions: Option<Vec<i64>>,
    commit_transaction_id: Option<i64>,
    commit_recorded_at: Option<DateTime<Utc>>,
}

/// Appends `requests` in one transaction and answers each. A batch that
/// fails as a whole is run again one commit per transaction, so that one
/// commit the store refuses cannot fail the others.
pub(super) async fn append(pool: &PgPool, requests: Vec<Request>, appended: &AppendSignal) {
    match write(pool, &requests).await {
        Ok(rows) => answer(requests, rows, appended),
        Err(err) if requests.len() > 1 && !is_unavailable(&err) => {
            tracing::debug!(error = %err, commits = requests.len(), "a batch failed as a whole; appending its commits one by one");
            for request in requests {
                let outcome = match write(pool, std::slice::from_ref(&request)).await {
                    Ok(rows) => outcome_of(rows.into_iter().next()),
                    Err(err) => Err(error_of(err)),
                };
                if outcome.is_ok() {
                    appended.notify();
                }
                let _ = request.reply.send(outcome);
            }
        }
        Err(err) => {
            let err = error_of(err);
            for request in requests {
                let _ = request.reply.send(Err(copy_of(&err)));
            }
        }
    }
}

/// Writes the commits of `requests` with one statement (its own
/// transaction), one row per commit in their order.
async fn write(pool: &PgPool, requests: &[Request]) -> Result<Vec<Row>, sqlx::Error> {
    let batch: Vec<Value> = requests
        .iter()
        .map(|request| commit_json(&request.commit))
        .collect();
    sqlx::query_as(
        "SELECT commit_ordinal, commit_appended, commit_event_ids, commit_positions, \
                commit_transaction_id, commit_recorded_at \
         FROM hub_append_batch($1) ORDER BY commit_ordinal",
    )
    .bind(Value::Array(batch))
    .fetch_all(pool)
    .await
}

/// The commit as `hub_append_batch` reads it: the rows postgres-es would
/// write.
fn commit_json(commit: &Commit) -> Value {
    let events: Vec<Value> = commit
        .events
        .iter()
        .map(|event| {
            json!({
                "aggregate_type": event.aggregate_type,
                "aggregate_id": event.aggregate_id,
                "sequence": event.sequence,
                "event_type": event.event_type,
                "event_version": event.event_version,
                "payload": event.payload,
                "metadata": event.metadata,
            })
        })
        .collect();
    let snapshot = commit.snapshot.as_ref().map(|snapshot| {
        let first = commit.events.first();
        json!({
            "aggregate_type": first.map(|event| event.aggregate_type.as_str()),
            "aggregate_id": first.map(|event| event.aggregate_id.as_str()),
            "last_sequence": snapshot.last_sequence,
            "current_snapshot": snapshot.current_snapshot,
            "payload": snapshot.payload,
        })
    });
    json!({ "events": events, "snapshot": snapshot })
}

/// Sends each caller its commit's row; wakes the feed once if any appended.
fn answer(requests: Vec<Request>, rows: Vec<Row>, appended: &AppendSignal) {
    let mut rows = rows.into_iter().peekable();
    let mut any = false;
    for (ordinal, request) in (1..).zip(requests) {
        let row = rows.next_if(|row| row.commit_ordinal == ordinal);
        let outcome = outcome_of(row);
        any |= outcome.is_ok();
        let _ = request.reply.send(outcome);
    }
    if any {
        appended.notify();
    }
}

fn outcome_of(row: Option<Row>) -> Result<Appended, AppendError> {
    let incomplete =
        || AppendError::Internal("hub_append_batch gave no complete answer for a commit".into());
    let row = row.ok_or_else(incomplete)?;
    if !row.commit_appended {
        return Err(AppendError::Conflict);
    }
    let (Some(event_ids), Some(positions), Some(transaction_id), Some(recorded_at)) = (
        row.commit_event_ids,
        row.commit_positions,
        row.commit_transaction_id,
        row.commit_recorded_at,
    ) else {
        return Err(incomplete());
    };
    let last = positions.last().map(|&position| FeedPosition {
        transaction_id,
        position,
    });
    Ok(Appended {
        event_ids,
        last: last.ok_or_else(incomplete)?,
        recorded_at,
    })
}

fn error_of(err: sqlx::Error) -> AppendError {
    if is_unavailable(&err) {
        return AppendError::Unavailable(Box::new(err));
    }
    match &err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(DEADLOCK) => {
            AppendError::Conflict
        }
        _ => AppendError::Internal(Box::new(err)),
    }
}

/// The same failure for another commit of the batch (errors do not clone).
fn copy_of(err: &AppendError) -> AppendError {
    match err {
        AppendError::Conflict => AppendError::Conflict,
        AppendError::Unavailable(err) => AppendError::Unavailable(err.to_string().into()),
        AppendError::Internal(err) => AppendError::Internal(err.to_string().into()),
    }
}
