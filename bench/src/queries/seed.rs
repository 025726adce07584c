//! The seeded store: integration events written straight with SQL, in
//! chunks of one transaction each, as the hub would have stored them.

use anyhow::Context as _;
use sqlx::{Connection, PgConnection};

use super::QueriesConfig;

/// Events per seeding transaction.
const CHUNK: i64 = 500_000;

/// The consumers of a hub that the seed must not reach: they are moved past
/// it (`event_log` is rebuilt from it instead).
const SKIPPED: [&str; 3] = ["projects", "nats_relay", "project_orchestrator"];

/// `$1..$2`: the events' numbers; `$3`: correlation ids; `$4`: the hub id;
/// `$5`: the time of event 0; `$6`: every how many events one has the
/// retired subject; `$7`: the number of events; `$8`: the retired domain
/// and action. Subjects cycle through five domains times three actions,
/// but for the retired subject ([`RETIRED`]): every `$6`th event of the
/// log's first half. Event `i` is recorded `i` ms after `$5`.
const SEED: &str = "\
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
SELECT 'IntegrationEvent', md5('q' || i)::uuid::text, 1, 'IntegrationEventPublished', '1.0',
       json_build_object('IntegrationEventPublished', json_build_object(
           'subject', 'hub.' || $4 || '.' || CASE WHEN i % $6 = 0 AND 2 * i <= $7 THEN $8 ELSE
                  (ARRAY['deploy','build','test','audit','backup'])[i % 5 + 1] || '.'
               || (ARRAY['started','completed','failed'])[(i / 5) % 3 + 1] END,
           'payload', json_build_object('n', i, 'status', 'ok'))),
       json_build_object('correlation_id', 'corr-' || (i % $3), 'causation_id', 'cause-' || i,
                         'hub_id', $4, 'service', 'hub-api', 'user', 'anonymous'),
       $5::timestamptz + i * interval '1 millisecond'
FROM generate_series($1::bigint, $2::bigint) i
ORDER BY i";

/// Moves the consumers in [`SKIPPED`] to the head of the log.
const SKIP: &str = "\
INSERT INTO feed_checkpoints (consumer, transaction_id, position, handled)
SELECT c, head.transaction_id, head.position, $2 FROM unnest($1::text[]) c,
     (SELECT transaction_id, position FROM events ORDER BY transaction_id DESC, position DESC LIMIT 1) head
ON CONFLICT (consumer) DO UPDATE
SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position, handled = EXCLUDED.handled";

/// The domain and action of a subject no longer published: one event in
/// ten of the log's first half, none after.
pub(super) const RETIRED: &str = "legacy.synced";

/// The domain of [`RETIRED`]: no other subject has it.
pub(super) const RETIRED_DOMAIN: &str = "legacy";

/// Every how many events of the first half one has the retired subject.
const RETIRED_EVERY: i64 = 10;

/// The correlation id of the events whose number is `n` modulo the count.
pub(super) fn correlation(n: i64) -> String {
    format!("corr-{n}")
}

/// Seeds `config.events` events for `hub_id` into the store at `url`.
///
/// # Errors
/// When a statement fails.
pub(super) async fn seed(url: &str, hub_id: &str, config: &QueriesConfig) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let start = chrono::Utc::now() - chrono::Duration::milliseconds(config.events);
    let mut first = 1;
    while first <= config.events {
        let last = (first + CHUNK - 1).min(config.events);
        sqlx::query(SEED)
            .bind(first)
            .bind(last)
            .bind(config.correlations)
            .bind(hub_id)
            .bind(start)
            .bind(RETIRED_EVERY)
            .bind(config.events)
            .bind(RETIRED)
            .execute(&mut conn)
            .await
            .context("while seeding the events")?;
        first = last + 1;
    }
    sqlx::query(SKIP)
        .bind(SKIPPED.as_slice())
        .bind(config.events)
        .execute(&mut conn)
        .await
        .context("while moving the other consumers past the seed")?;
    Ok(())
}
