//! The raw baseline of the `commands` scenario: the store work of each
//! command done straight with sqlx, on a database migrated with the hub's
//! schema where nothing consumes the events (see the `commands` module).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::load::{closed_loop, gather};
use crate::stats::{summarize, Summary};

const LOAD: &str =
    "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
                    FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence";
const INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
                      VALUES ($1, $2, $3, $4, '1.0', $5, $6)";

/// One command's store work: load, then insert in a transaction.
async fn raw_command(
    pool: &PgPool,
    id: &str,
    sequence: i64,
    event_type: &str,
    payload: &Value,
) -> Result<(), sqlx::Error> {
    let _history = sqlx::query(LOAD)
        .bind("BenchRaw")
        .bind(id)
        .fetch_all(pool)
        .await?;
    let metadata = json!({"correlation_id": id, "causation_id": id, "hub_id": "bench", "service": "bench", "user": "bench"});
    let mut tx = pool.begin().await?;
    sqlx::query(INSERT)
        .bind("BenchRaw")
        .bind(id)
        .bind(sequence)
        .bind(event_type)
        .bind(payload)
        .bind(&metadata)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

pub(crate) async fn creates(pool: &PgPool, clients: usize, per_client: usize) -> Summary {
    let pool = pool.clone();
    closed_loop(clients, per_client, move |_, _| {
        let pool = pool.clone();
        async move {
            let id = Uuid::new_v4().to_string();
            let payload = json!({"ProjectCreated": {"project_id": id, "name": id, "slug": id, "path": "/srv/x",
                "ports": {"backend": 1, "frontend": 2, "postgres": 3, "redis": 4}}});
            raw_command(&pool, &id, 1, "ProjectCreated", &payload).await
        }
    })
    .await
}

const RECORD_REQUEST: &str = "INSERT INTO orchestration_requests \
     (project_id, request_sequence, kind, event_id, correlation_id, requested_by) \
     VALUES ($1, $2, $3, $4, $5, 'bench')";
const MARK_ATTEMPT: &str = "UPDATE orchestration_requests \
     SET attempt_started_at = now(), attempt_hub_id = 'bench' \
     WHERE project_id = $1 AND request_sequence = $2";
const MARK_FINISHED: &str = "UPDATE orchestration_requests \
     SET finished_at = now(), outcome = 'COMPLETED' \
     WHERE project_id = $1 AND request_sequence = $2";

/// One start or stop's store work, orchestration included (see the module
/// documentation): the request at `sequence`, its completion at `sequence + 1`.
async fn raw_toggle(
    pool: &PgPool,
    id: Uuid,
    sequence: i64,
    start: bool,
) -> Result<(), sqlx::Error> {
    let (request, completion, kind) = if start {
        ("ProjectStartRequested", "ProjectStarted", "START")
    } else {
        ("ProjectStopRequested", "ProjectStopped", "STOP")
    };
    let aggregate = id.to_string();
    raw_command(pool, &aggregate, sequence, request, &json!({ request: {} })).await?;
    sqlx::query(RECORD_REQUEST)
        .bind(id)
        .bind(sequence)
        .bind(kind)
        .bind(Uuid::new_v4())
        .bind(&aggregate)
        .execute(pool)
        .await?;
    sqlx::query(MARK_ATTEMPT)
        .bind(id)
        .bind(sequence)
        .execute(pool)
        .await?;
    raw_command(
        pool,
        &aggregate,
        sequence + 1,
        completion,
        &json!({ completion: {} }),
    )
    .await?;
    sqlx::query(MARK_FINISHED)
        .bind(id)
        .bind(sequence)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn cycles(pool: &PgPool, clients: usize, duration: Duration) -> Summary {
    let started = Instant::now();
    let tasks = (0..clients)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let id = Uuid::new_v4();
                let (mut samples, mut errors, mut sequence) = (Vec::new(), 0, 1);
                while started.elapsed() < duration {
                    let t = Instant::now();
                    match raw_toggle(&pool, id, sequence, sequence % 4 == 1).await {
                        Ok(()) => samples.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                    // A failed toggle may have written part of its work:
                    // go on after it either way.
                    sequence += 2;
                }
                (samples, errors)
            })
        })
        .collect();
    let (samples, errors) = gather(tasks).await;
    summarize(samples, errors, started.elapsed())
}
