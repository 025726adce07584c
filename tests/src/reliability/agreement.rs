//! Do the store, the JetStream stream and the read models agree?
//!
//! Read straight from the sources (the `events` table, the stream's stored
//! messages, the `projects` and `event_log` tables), never through the hub:
//! - every acknowledged command's event is in the store, once;
//! - each aggregate's events in the store are numbered 1, 2, 3... in feed
//!   order;
//! - `event_log` holds exactly the store's events, with the same aggregate,
//!   sequence and position;
//! - `projects` has one row per project aggregate, at the aggregate's last
//!   sequence, with the status its events lead to, and none is left STARTING
//!   or STOPPING (orchestration finished every request);
//! - the stream holds exactly one message per store event (`Nats-Msg-Id` =
//!   event id), in feed order.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use sqlx::{PgPool, Row as _};
use uuid::Uuid;

use super::Ledger;
use crate::jetstream::{context, hub_events, message_count, read_stream};

/// One way the sources disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discrepancy {
    /// Something acknowledged or stored is missing where it must be.
    Lost(String),
    /// Something is there twice.
    Duplicated(String),
    /// Something is there but wrong (order, version, status, an extra row).
    Mismatch(String),
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::Lost(what) => write!(f, "lost: {what}"),
            Discrepancy::Duplicated(what) => write!(f, "duplicated: {what}"),
            Discrepancy::Mismatch(what) => write!(f, "mismatch: {what}"),
        }
    }
}

/// What the sources held when compared, and how they disagreed.
#[derive(Clone, Debug, Default)]
pub struct Agreement {
    /// Events in the store.
    pub store_events: usize,
    /// Project aggregates in the store.
    pub projects: usize,
    /// Acknowledged commands checked.
    pub acked: usize,
    /// Hub events in the stream.
    pub stream_events: usize,
    /// Rows in `event_log`.
    pub event_log_rows: usize,
    /// Every disagreement found.
    pub discrepancies: Vec<Discrepancy>,
}

impl Agreement {
    /// Whether everything agrees.
    pub fn holds(&self) -> bool {
        self.discrepancies.is_empty()
    }

    /// Lost commands and events.
    pub fn lost(&self) -> usize {
        self.count(|d| matches!(d, Discrepancy::Lost(_)))
    }

    /// Duplicated commands and events.
    pub fn duplicated(&self) -> usize {
        self.count(|d| matches!(d, Discrepancy::Duplicated(_)))
    }

    /// Other disagreements.
    pub fn mismatched(&self) -> usize {
        self.count(|d| matches!(d, Discrepancy::Mismatch(_)))
    }

    fn count(&self, which: impl Fn(&Discrepancy) -> bool) -> usize {
        self.discrepancies.iter().filter(|d| which(d)).count()
    }

    /// One line of figures.
    pub fn summary(&self) -> String {
        format!(
            "acknowledged {} | store {} events, {} projects | stream {} | event_log {} | lost {} | duplicated {} | other {}",
            self.acked,
            self.store_events,
            self.projects,
            self.stream_events,
            self.event_log_rows,
            self.lost(),
            self.duplicated(),
            self.mismatched()
        )
    }

    /// # Panics
    /// When anything disagrees, listing the first discrepancies.
    pub fn assert_holds(&self, scenario: &str) {
        if self.holds() {
            return;
        }
        let listed: Vec<String> = self
            .discrepancies
            .iter()
            .take(30)
            .map(ToString::to_string)
            .collect();
        panic!(
            "{scenario}: the store, the stream and the read models disagree ({})\n{}",
            self.summary(),
            listed.join("\n")
        );
    }

    /// Compares the sources once.
    ///
    /// # Panics
    /// When the database or NATS cannot be read.
    pub async fn measure(pool: &PgPool, nats_url: &str, stream: &str, ledger: &Ledger) -> Self {
        let store = read_store(pool).await;
        let mut agreement = Agreement {
            store_events: store.len(),
            acked: ledger.acked_count(),
            ..Agreement::default()
        };
        agreement.check_store(&store);
        agreement.check_acked(&store, ledger);
        agreement.check_event_log(pool, &store).await;
        agreement.check_projects(pool, &store).await;
        agreement.check_stream(nats_url, stream, &store).await;
        agreement
    }

    fn push(&mut self, discrepancy: Discrepancy) {
        self.discrepancies.push(discrepancy);
    }

    /// Each aggregate's sequences run 1, 2, 3... in feed order.
    fn check_store(&mut self, store: &[StoreEvent]) {
        let mut last: HashMap<&str, i64> = HashMap::new();
        for event in store {
            let previous = last.insert(&event.aggregate_id, event.sequence);
            if previous.unwrap_or(0) + 1 != event.sequence {
                self.push(Discrepancy::Mismatch(format!(
                    "store: {} #{} follows #{} in feed order",
                    event.aggregate_id,
                    event.sequence,
                    previous.unwrap_or(0)
                )));
            }
        }
        self.projects = store
            .iter()
            .filter(|e| e.aggregate_type == "Project")
            .map(|e| &e.aggregate_id)
            .collect::<HashSet<_>>()
            .len();
    }

    /// Every acknowledged command's own event is in the store, once.
    fn check_acked(&mut self, store: &[StoreEvent], ledger: &Ledger) {
        let mut by_correlation: HashMap<&str, Vec<&StoreEvent>> = HashMap::new();
        for event in store {
            if let Some(correlation) = event.correlation_id.as_deref() {
                by_correlation.entry(correlation).or_default().push(event);
            }
        }
        for attempt in ledger.acked() {
            let super::Outcome::Acked {
                project_id,
                version,
                ..
            } = &attempt.outcome
            else {
                continue;
            };
            if attempt.target.as_ref().is_some_and(|t| t != project_id) {
                self.push(Discrepancy::Mismatch(format!(
                    "{} {} was answered with another project {project_id}",
                    attempt.kind.field(),
                    attempt.correlation_id
                )));
            }
            let own: Vec<&&StoreEvent> = by_correlation
                .get(attempt.correlation_id.as_str())
                .map(|events| {
                    events
                        .iter()
                        .filter(|e| {
                            e.aggregate_id == *project_id
                                && e.event_type == attempt.kind.event_type()
                        })
                        .collect()
                })
                .unwrap_or_default();
            match own.as_slice() {
                [] => self.push(Discrepancy::Lost(format!(
                    "acknowledged {} {} (project {project_id}, version {version}) has no {} in the store",
                    attempt.kind.field(),
                    attempt.correlation_id,
                    attempt.kind.event_type()
                ))),
                [event] if event.sequence > *version => self.push(Discrepancy::Mismatch(format!(
                    "{} {} answered version {version}, older than its own event #{}",
                    attempt.kind.field(),
                    attempt.correlation_id,
                    event.sequence
                ))),
                [_] => {}
                many => self.push(Discrepancy::Duplicated(format!(
                    "acknowledged {} {} recorded {} times",
                    attempt.kind.field(),
                    attempt.correlation_id,
                    many.len()
                ))),
            }
        }
    }

    /// `event_log` holds exactly the store's events.
    async fn check_event_log(&mut self, pool: &PgPool, store: &[StoreEvent]) {
        let rows = sqlx::query("SELECT id, aggregate_id, sequence, position FROM event_log")
            .fetch_all(pool)
            .await
            .expect("read event_log");
        self.event_log_rows = rows.len();
        let mut logged: HashMap<Uuid, (String, i64, i64)> = rows
            .iter()
            .map(|row| {
                (
                    row.get("id"),
                    (
                        row.get("aggregate_id"),
                        row.get("sequence"),
                        row.get("position"),
                    ),
                )
            })
            .collect();
        for event in store {
            match logged.remove(&event.event_id) {
                None => self.push(Discrepancy::Lost(format!(
                    "event_log lacks {} ({} #{})",
                    event.event_id, event.aggregate_id, event.sequence
                ))),
                Some((aggregate, sequence, position))
                    if aggregate != event.aggregate_id
                        || sequence != event.sequence
                        || position != event.position =>
                {
                    self.push(Discrepancy::Mismatch(format!(
                        "event_log has {} as {aggregate} #{sequence} at {position}, the store as {} #{} at {}",
                        event.event_id, event.aggregate_id, event.sequence, event.position
                    )));
                }
                Some(_) => {}
            }
        }
        for id in logged.keys() {
            self.push(Discrepancy::Mismatch(format!(
                "event_log has {id}, which the store does not"
            )));
        }
    }

    /// `projects` has each project at its last sequence and settled status.
    async fn check_projects(&mut self, pool: &PgPool, store: &[StoreEvent]) {
        let rows = sqlx::query("SELECT id::text AS id, version, status FROM projects")
            .fetch_all(pool)
            .await
            .expect("read projects");
        let mut rows: HashMap<String, (i64, String)> = rows
            .iter()
            .map(|row| (row.get("id"), (row.get("version"), row.get("status"))))
            .collect();
        let mut expected: HashMap<&str, (i64, &'static str)> = HashMap::new();
        for event in store.iter().filter(|e| e.aggregate_type == "Project") {
            let entry = expected
                .entry(&event.aggregate_id)
                .or_insert((0, "STOPPED"));
            entry.0 = event.sequence;
            entry.1 = status_after(&event.event_type, entry.1);
        }
        for (id, (version, status)) in expected {
            match rows.remove(id) {
                None => self.push(Discrepancy::Lost(format!("projects lacks {id}"))),
                Some((row_version, row_status)) => {
                    if row_version != version {
                        self.push(Discrepancy::Mismatch(format!(
                            "projects has {id} at version {row_version}, the store at {version}"
                        )));
                    }
                    if row_status != status {
                        self.push(Discrepancy::Mismatch(format!(
                            "projects has {id} {row_status}, its events say {status}"
                        )));
                    }
                    if matches!(status, "STARTING" | "STOPPING") {
                        self.push(Discrepancy::Mismatch(format!(
                            "project {id} is still {status}: its request was never completed"
                        )));
                    }
                }
            }
        }
        for id in rows.keys() {
            self.push(Discrepancy::Mismatch(format!(
                "projects has {id}, which the store does not"
            )));
        }
    }

    /// The stream holds one message per store event, in feed order.
    async fn check_stream(&mut self, nats_url: &str, stream: &str, store: &[StoreEvent]) {
        let js = context(nats_url).await;
        let messages = read_stream(&js, stream).await;
        let published = hub_events(&messages);
        self.stream_events = published.len();
        let by_id: HashMap<Uuid, &StoreEvent> = store.iter().map(|e| (e.event_id, e)).collect();
        let mut seen = HashSet::new();
        let mut in_order = Vec::with_capacity(published.len());
        for message in published {
            let Some(id) = message.event_id() else {
                self.push(Discrepancy::Mismatch(format!(
                    "stream message {} has no event id",
                    message.sequence
                )));
                continue;
            };
            if message.msg_id.as_deref() != Some(id.to_string().as_str()) {
                self.push(Discrepancy::Mismatch(format!(
                    "stream message {} has Nats-Msg-Id {:?}, not its event id {id}",
                    message.sequence, message.msg_id
                )));
            }
            if !seen.insert(id) {
                self.push(Discrepancy::Duplicated(format!(
                    "event {id} is in the stream again at {}",
                    message.sequence
                )));
                continue;
            }
            match by_id.get(&id) {
                None => self.push(Discrepancy::Mismatch(format!(
                    "the stream has {id}, which the store does not"
                ))),
                Some(event)
                    if message.body["aggregate_id"] != event.aggregate_id.as_str()
                        || message.body["sequence"] != event.sequence =>
                {
                    self.push(Discrepancy::Mismatch(format!(
                        "stream message {} names {} #{}, the store {} #{}",
                        message.sequence,
                        message.body["aggregate_id"],
                        message.body["sequence"],
                        event.aggregate_id,
                        event.sequence
                    )));
                }
                Some(_) => {}
            }
            in_order.push(id);
        }
        for event in store {
            if !seen.contains(&event.event_id) {
                self.push(Discrepancy::Lost(format!(
                    "the stream lacks {} ({} #{})",
                    event.event_id, event.aggregate_id, event.sequence
                )));
            }
        }
        let feed_order: Vec<Uuid> = store
            .iter()
            .map(|e| e.event_id)
            .filter(|id| seen.contains(id))
            .collect();
        let known: Vec<Uuid> = in_order
            .into_iter()
            .filter(|id| by_id.contains_key(id))
            .collect();
        if let Some(at) = known.iter().zip(&feed_order).position(|(a, b)| a != b) {
            self.push(Discrepancy::Mismatch(format!(
                "the stream's order departs from the feed's at hub event {at}: {} where the feed has {}",
                known[at], feed_order[at]
            )));
        }
    }
}

/// The status a project has after `event_type`, from `before`.
fn status_after(event_type: &str, before: &'static str) -> &'static str {
    match event_type {
        "ProjectCreated" | "ProjectStopped" => "STOPPED",
        "ProjectStartRequested" => "STARTING",
        "ProjectStarted" => "RUNNING",
        "ProjectStartFailed" | "ProjectStopFailed" => "ERROR",
        "ProjectStopRequested" | "ProjectRestartRequested" => "STOPPING",
        "ProjectDeleted" => "DELETED",
        _ => before,
    }
}

/// One row of `events`.
struct StoreEvent {
    event_id: Uuid,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    correlation_id: Option<String>,
    position: i64,
}

/// Every stored event, in feed order.
async fn read_store(pool: &PgPool) -> Vec<StoreEvent> {
    sqlx::query(
        "SELECT event_id, aggregate_type, aggregate_id, sequence, event_type, \
         metadata->>'correlation_id' AS correlation_id, position \
         FROM events ORDER BY transaction_id, position",
    )
    .fetch_all(pool)
    .await
    .expect("read the event store")
    .iter()
    .map(|row| StoreEvent {
        event_id: row.get("event_id"),
        aggregate_type: row.get("aggregate_type"),
        aggregate_id: row.get("aggregate_id"),
        sequence: row.get("sequence"),
        event_type: row.get("event_type"),
        correlation_id: row.get("correlation_id"),
        position: row.get("position"),
    })
    .collect()
}

/// Whether the consumers look caught up: as many `event_log` rows and
/// stream messages as store events, every project row at its aggregate's
/// last sequence, and no project STARTING or STOPPING. Cheap; `None` while
/// something cannot be read (NATS reconnecting).
async fn caught_up(pool: &PgPool, nats_url: &str, stream: &str) -> Option<bool> {
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM events) AS events, \
                (SELECT count(*) FROM event_log) AS logged, \
                (SELECT count(*) FROM projects WHERE status IN ('STARTING', 'STOPPING')) AS unsettled, \
                (SELECT count(*) FROM ( \
                    SELECT aggregate_id, max(sequence) AS version FROM events \
                    WHERE aggregate_type = 'Project' GROUP BY aggregate_id) s \
                 FULL JOIN projects p ON p.id::text = s.aggregate_id \
                 WHERE s.version IS DISTINCT FROM p.version) AS behind",
    )
    .fetch_one(pool)
    .await
    .ok()?;
    let events: i64 = row.get("events");
    let logged: i64 = row.get("logged");
    let unsettled: i64 = row.get("unsettled");
    let behind: i64 = row.get("behind");
    let client = async_nats::connect(nats_url).await.ok()?;
    let published = message_count(&async_nats::jetstream::new(client), stream).await?;
    Some(events == logged && unsettled == 0 && behind == 0 && published == events as u64)
}

/// Waits until the consumers have caught up and the sources agree; returns
/// the last comparison (which the caller asserts) when they do not agree
/// within `timeout`.
pub async fn wait_for_agreement(
    pool: &PgPool,
    nats_url: &str,
    stream: &str,
    ledger: &Ledger,
    timeout: Duration,
) -> Agreement {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        if caught_up(pool, nats_url, stream).await == Some(true) {
            let agreement = Agreement::measure(pool, nats_url, stream, ledger).await;
            if agreement.holds() {
                return agreement;
            }
            last = Some(agreement);
        }
        if tokio::time::Instant::now() >= deadline {
            return match last {
                Some(agreement) => agreement,
                // Never caught up: compare anyway, to say what is missing.
                None => Agreement::measure(pool, nats_url, stream, ledger).await,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
