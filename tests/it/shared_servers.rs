//! The hub on a PostgreSQL server it shares with other applications: their
//! open transactions (in another database, or on another table of the
//! hub's own) delay nothing; a transaction that appends events holds the
//! feed back (nothing is skipped), is named by `/health` once it has held
//! it too long, and a mutation meanwhile still learns that its change was
//! recorded.

use std::time::Duration;

use hub_tests::graphql::{data, data_as, view};
use hub_tests::jetstream::{context, health_report, read_stream};
use hub_tests::views::{HealthStatus, LiveEvent};
use hub_tests::ws::{Protocol, WsClient, EVENTS};
use hub_tests::{wait_until, TestDb, TestHub};
use serde::Deserialize;
use serde_json::json;
use sqlx::{Connection as _, PgConnection};

const ARRIVES: Duration = Duration::from_secs(15);

/// An open write transaction of another application, on `url`, holding a
/// transaction id until dropped (rolled back).
struct Bystander {
    conn: PgConnection,
}

impl Bystander {
    async fn open(url: &str, table: &str) -> Self {
        let mut conn = PgConnection::connect(url)
            .await
            .expect("connect the bystander");
        for statement in [
            format!("CREATE TABLE IF NOT EXISTS {table} (x int)"),
            "SET application_name = 'bystander'".to_owned(),
            "BEGIN".to_owned(),
            format!("INSERT INTO {table} VALUES (1)"),
        ] {
            sqlx::query(&statement)
                .execute(&mut conn)
                .await
                .expect("the bystander's statement");
        }
        Self { conn }
    }

    async fn end(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.conn)
            .await
            .expect("roll the bystander back");
    }
}

const CREATE: &str = "mutation($input: CreateProjectInput!) { createProject(input: $input) { \
     stale project { id name version } } }";

/// `createProject` as `CREATE` selects it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Created {
    stale: bool,
    project: CreatedProject,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatedProject {
    id: String,
    name: String,
    version: i64,
}

async fn create(hub: &TestHub, name: &str) -> Created {
    let answer = hub
        .graphql(
            CREATE,
            json!({ "input": { "name": name, "path": "/srv/x" } }),
        )
        .await;
    data_as(&answer, "createProject")
}

/// A live subscriber of every event.
async fn subscriber(hub: &TestHub) -> WsClient {
    let mut subscriber = WsClient::connect_and_init(hub, Protocol::TransportWs, json!({})).await;
    subscriber.subscribe("live", EVENTS, json!({})).await;
    subscriber.wait_live_creating_probes("live", hub).await;
    subscriber
}

/// Creates a project while a bystander is open and checks that nothing
/// waited: the answer comes from the read model, and the event reaches the
/// event log, NATS and the live `subscriber`.
async fn nothing_waits(hub: &TestHub, subscriber: &mut WsClient, name: &str) {
    let created = create(hub, name).await;
    assert!(!created.stale, "the read model kept up: {created:?}");
    let id = created.project.id;
    // The answer came after the `projects` read model showed it, so the
    // feed moved; `event_log` is fed by a runner of its own.
    wait_until("the event to reach the event log", ARRIVES, || async {
        let logged = hub_tests::rest::list(hub, &[("limit", "1000")]).await;
        logged.body.to_string().contains(&id).then_some(())
    })
    .await;
    let js = context(&hub_tests::hub::nats_url()).await;
    wait_until("the relay to publish the event", ARRIVES, || {
        let (js, stream, id) = (js.clone(), hub.stream_name(), id.clone());
        async move {
            // The relay makes the stream once it has reached NATS.
            js.get_stream(&stream).await.ok()?;
            read_stream(&js, &stream)
                .await
                .iter()
                .any(|m| m.body["aggregate_id"] == id)
                .then_some(())
        }
    })
    .await;
    loop {
        let event: LiveEvent = view(&subscriber.next_data("live", ARRIVES).await["events"]);
        if event.aggregate_id == id {
            break;
        }
    }
    let report = health_report(hub).await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert!(report.feed.held_back_by.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_transaction_open_in_another_database_delays_nothing() {
    let db = TestDb::create().await;
    let other = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let mut live = subscriber(&hub).await;
    let bystander = Bystander::open(other.url(), "elsewhere").await;
    // Other transactions complete after it: without a writers-only fence
    // the feed would stop here until the bystander ends.
    nothing_waits(&hub, &mut live, "Other Database").await;
    nothing_waits(&hub, &mut live, "Other Database Again").await;
    bystander.end().await;
}

#[tokio::test]
async fn a_transaction_on_another_table_of_the_hubs_database_delays_nothing() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let mut live = subscriber(&hub).await;
    let bystander = Bystander::open(db.url(), "unrelated_table").await;
    nothing_waits(&hub, &mut live, "Same Database").await;
    nothing_waits(&hub, &mut live, "Same Database Again").await;
    bystander.end().await;
}

#[tokio::test]
async fn a_slow_event_writer_holds_the_feed_back_is_named_and_skips_nothing() {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.feed_stall_warn_secs = 1;
    config.read_your_writes_timeout_ms = 500;
    let hub = TestHub::start_with(config).await;
    let before = create(&hub, "Before").await;
    assert!(!before.stale, "{before:?}");

    // A transaction that appends an event and stays open.
    let mut writer = PgConnection::connect(db.url())
        .await
        .expect("connect the writer");
    sqlx::query("SET application_name = 'slow-writer'")
        .execute(&mut writer)
        .await
        .unwrap();
    let writer_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut writer)
        .await
        .unwrap();
    let mut slow = writer.begin().await.expect("begin");
    let slow_event = hub_tests::feed::insert_event(&mut slow).await;

    // A mutation meanwhile is recorded, and says so, though the read model
    // cannot show it yet.
    let answer = create(&hub, "During").await;
    assert!(answer.stale, "{answer:?}");
    assert_eq!(answer.project.name, "During");
    assert_eq!(answer.project.version, 1);
    let during = answer.project.id;
    let row = hub
        .graphql(
            "query($id: ID!) { project(id: $id) { name } }",
            json!({ "id": during }),
        )
        .await;
    assert!(
        data(&row, "project").is_null(),
        "the read model waits: {row}"
    );

    // /health names the writer once it has held the feed back for a second.
    let report = wait_until("/health to name the slow writer", ARRIVES, || async {
        let report = health_report(&hub).await;
        (report.status == HealthStatus::Degraded).then_some(report)
    })
    .await;
    let holder = report
        .feed
        .held_back_by
        .first()
        .unwrap_or_else(|| panic!("a holder: {report:?}"));
    assert_eq!(holder.pid, writer_pid, "{report:?}");
    assert_eq!(
        holder.application_name.as_deref(),
        Some("slow-writer"),
        "{report:?}"
    );
    assert_eq!(holder.database.as_deref(), Some(db.name()), "{report:?}");
    assert!(
        holder.state.is_some() && holder.open_seconds >= 1.0,
        "{report:?}"
    );
    let metrics = hub
        .http()
        .get(format!("{}/metrics", hub.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let wait: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("hub_feed_wait_seconds "))
        .and_then(|value| value.parse().ok())
        .expect("hub_feed_wait_seconds");
    assert!(wait >= 1.0, "{wait}");

    // Once it commits, everything is read, in feed order, nothing skipped.
    slow.commit().await.expect("commit the slow writer");
    hub.wait_for_status(&during, "STOPPED").await;
    let pool = db.pool().await;
    let logged: Vec<uuid::Uuid> = wait_until("the event log to hold every event", ARRIVES, || {
        let pool = pool.clone();
        async move {
            let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM event_log")
                .fetch_all(&pool)
                .await
                .ok()?;
            (ids.len() == 3).then_some(ids)
        }
    })
    .await;
    assert!(
        logged.contains(&slow_event.event_id),
        "the slow writer's event is not skipped"
    );
    let report = wait_until("/health to be healthy again", ARRIVES, || async {
        let report = health_report(&hub).await;
        (report.status == HealthStatus::Healthy).then_some(report)
    })
    .await;
    assert!(report.feed.held_back_by.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_transaction_that_wrote_elsewhere_first_cannot_append_events() {
    let db = TestDb::create().await;
    let pool = hub_tests::feed::migrated_pool(&db).await;
    sqlx::query("CREATE TABLE elsewhere (x int)")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO elsewhere VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let refused = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Test', 'late', 1, 'Tested', '1.0', '{}', '{}')",
    )
    .execute(&mut *tx)
    .await
    .expect_err("refused");
    assert!(
        refused
            .to_string()
            .contains("must append them before it writes anything else"),
        "{refused}"
    );
    tx.rollback().await.unwrap();

    // Events first, then anything: fine, and several inserts too.
    let mut tx = pool.begin().await.unwrap();
    hub_tests::feed::insert_event(&mut tx).await;
    sqlx::query("INSERT INTO elsewhere VALUES (2)")
        .execute(&mut *tx)
        .await
        .unwrap();
    hub_tests::feed::insert_event(&mut tx).await;
    tx.commit().await.unwrap();
}
