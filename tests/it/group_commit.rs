//! Group commit (`infrastructure::append`): commits that wait together are
//! appended in one transaction, and each keeps its own concurrency check,
//! its own outcome and its own acknowledgement.
//!
//! To put chosen commits into one batch, each test runs an appender with a
//! single worker and holds it on a first commit: another session locks
//! `events` against writers, the worker's batch waits on that lock, the
//! commits under test queue up behind it (`Appender::waiting`), and when the
//! lock is released they are all taken as the next batch.

use std::sync::Arc;
use std::time::Duration;

use cqrs_es::persist::SerializedEvent;
use domain::{PortRange, ProjectCommand, ProjectError, ProjectId};
use hub_tests::feed::{create_project, metadata, migrated_pool, run};
use hub_tests::hub::nats_url;
use hub_tests::jetstream::DeleteStreamOnDrop;
use hub_tests::reliability::{hub_id, seed, wait_for_agreement, HubProcess, HubSpec, Load, Rng};
use hub_tests::{wait_until, TestDb};
use infrastructure::append::{AppendError, AppendLimits, Appender, Commit};
use infrastructure::feed::{AppendSignal, FeedPosition};
use infrastructure::lookup::PgProjectLookup;
use infrastructure::{CommandBus, CommandError};
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// A session holding writers off `events` until [`Gate::open`].
struct Gate {
    conn: PgConnection,
}

impl Gate {
    async fn close(db: &TestDb) -> Self {
        let mut conn = PgConnection::connect(db.url()).await.expect("connect");
        sqlx::query("BEGIN")
            .execute(&mut conn)
            .await
            .expect("begin");
        sqlx::query("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut conn)
            .await
            .expect("lock events against writers");
        Self { conn }
    }

    async fn open(mut self) {
        sqlx::query("COMMIT")
            .execute(&mut self.conn)
            .await
            .expect("release the lock");
    }
}

/// Sessions waiting for the lock on `events`.
async fn writers_waiting(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE relation = 'events'::regclass AND NOT granted",
    )
    .fetch_one(pool)
    .await
    .expect("read pg_locks")
}

/// A one-worker appender and a bus on it.
fn one_worker(pool: &PgPool) -> (Appender, Arc<CommandBus>) {
    let appender = Appender::with_limits(
        pool.clone(),
        AppendSignal::default(),
        AppendLimits {
            workers: 1,
            ..AppendLimits::default()
        },
    );
    let bus = Arc::new(CommandBus::new(
        pool.clone(),
        PgProjectLookup::new(pool.clone(), PortRange::default()),
        appender.clone(),
    ));
    (appender, bus)
}

/// Holds the appender's one worker on a first commit (a create through
/// `bus`) behind `gate`; returns that commit's task.
async fn hold_worker(
    pool: &PgPool,
    bus: &Arc<CommandBus>,
    appender: &Appender,
) -> JoinHandle<ProjectId> {
    let bus = bus.clone();
    let first = tokio::spawn(async move {
        let (id, outcome) = create_project(&bus, "held first").await;
        outcome.expect("the first commit is appended once the gate opens");
        id
    });
    wait_until("the worker to wait on the gate", WAIT, || async {
        (writers_waiting(pool).await == 1 && appender.waiting() == 0).then_some(())
    })
    .await;
    first
}

async fn wait_queued(appender: &Appender, commits: usize) {
    wait_until(&format!("{commits} commits to queue"), WAIT, || async {
        (appender.waiting() == commits).then_some(())
    })
    .await;
}

/// The transaction that wrote each of `aggregate_ids`' events.
async fn transactions_of(pool: &PgPool, aggregate_ids: &[String]) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT DISTINCT transaction_id::text FROM events WHERE aggregate_id = ANY($1)",
    )
    .bind(aggregate_ids)
    .fetch_all(pool)
    .await
    .expect("read the transactions")
}

#[tokio::test]
async fn in_one_batch_two_commands_on_one_project_at_the_same_expected_version_one_wins_one_conflicts(
) {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let (appender, bus) = one_worker(&pool);
    let (id, created) = create_project(&bus, "contended").await;
    assert_eq!(created.expect("created").version, 1);

    let gate = Gate::close(&db).await;
    let first = hold_worker(&pool, &bus, &appender).await;
    let (start, rename) = (bus.clone(), bus.clone());
    let start = tokio::spawn(async move {
        start
            .execute(id, ProjectCommand::StartProject, Some(1), &metadata())
            .await
    });
    wait_queued(&appender, 1).await;
    let rename = tokio::spawn(async move {
        let command = ProjectCommand::RenameProject {
            name: domain::ProjectName::parse("contended renamed").expect("a name"),
        };
        rename.execute(id, command, Some(1), &metadata()).await
    });
    wait_queued(&appender, 2).await;
    gate.open().await;

    first.await.expect("the first commit");
    let started = start.await.expect("start task");
    let renamed = rename.await.expect("rename task");
    assert_eq!(started.expect("the first in the batch wins").version, 2);
    match renamed {
        Err(CommandError::Conflict { expected, actual }) => {
            assert_eq!((expected, actual), (Some(1), 2));
        }
        other => panic!("the second must get CONFLICT, got {other:?}"),
    }
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id.to_string())
    .fetch_all(&pool)
    .await
    .expect("read the project's events");
    assert_eq!(events, ["ProjectCreated", "ProjectStartRequested"]);
}

#[tokio::test]
async fn in_one_batch_two_creates_with_one_name_one_wins_one_is_name_taken() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let (appender, bus) = one_worker(&pool);

    let gate = Gate::close(&db).await;
    let first = hold_worker(&pool, &bus, &appender).await;
    let mut creates = Vec::new();
    for queued in 1..=2 {
        let bus = bus.clone();
        creates.push(tokio::spawn(async move {
            create_project(&bus, "Same Name").await
        }));
        wait_queued(&appender, queued).await;
    }
    gate.open().await;
    first.await.expect("the first commit");

    let (winner, winning) = creates.remove(0).await.expect("create task");
    let (loser, losing) = creates.remove(0).await.expect("create task");
    assert_eq!(winning.expect("the first create wins").version, 1);
    match losing {
        Err(CommandError::Rejected(ProjectError::NameTaken { slug })) => {
            assert_eq!(slug, "same-name");
        }
        other => panic!("the second create must get NAME_TAKEN, got {other:?}"),
    }
    let holder: String =
        sqlx::query_scalar("SELECT project_id FROM project_slugs WHERE slug = 'same-name'")
            .fetch_one(&pool)
            .await
            .expect("the slug is held");
    assert_eq!(holder, winner.to_string());
    let loser_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(loser.to_string())
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(loser_events, 0, "nothing of the losing create is stored");
    let ports: i64 = sqlx::query_scalar("SELECT count(*) FROM project_ports WHERE project_id = $1")
        .bind(loser.to_string())
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(ports, 0, "the losing create holds no ports");
}

#[tokio::test]
async fn commits_that_wait_together_share_one_transaction_and_a_conflict_leaves_the_others_in_it() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let (appender, bus) = one_worker(&pool);
    let (taken, created) = create_project(&bus, "already here").await;
    created.expect("created");

    let gate = Gate::close(&db).await;
    let first = hold_worker(&pool, &bus, &appender).await;
    let mut tasks = Vec::new();
    for queued in 1..=6 {
        let bus = bus.clone();
        // The fourth claims a name another project holds: its create is
        // decided before the gate opens, so the domain already refuses it.
        // The others are new names.
        let name = if queued == 4 {
            "Already Here".to_owned()
        } else {
            format!("together {queued}")
        };
        tasks.push(tokio::spawn(
            async move { create_project(&bus, &name).await },
        ));
        if queued != 4 {
            wait_queued(&appender, queued - usize::from(queued > 4)).await;
        }
    }
    // Another commit in the same batch conflicts in the store: a start of
    // the existing project decided on its version 1, after a start that
    // queued first.
    let (start_a, rename_b) = (bus.clone(), bus.clone());
    let a = tokio::spawn(async move {
        start_a
            .execute(taken, ProjectCommand::StartProject, Some(1), &metadata())
            .await
    });
    wait_queued(&appender, 6).await;
    let b = tokio::spawn(async move {
        let command = ProjectCommand::RenameProject {
            name: domain::ProjectName::parse("already here again").expect("a name"),
        };
        rename_b.execute(taken, command, Some(1), &metadata()).await
    });
    wait_queued(&appender, 7).await;
    gate.open().await;
    first.await.expect("the first commit");

    let mut created = Vec::new();
    for (index, task) in tasks.into_iter().enumerate() {
        let (id, outcome) = task.await.expect("create task");
        if index == 3 {
            assert!(
                matches!(
                    outcome,
                    Err(CommandError::Rejected(ProjectError::NameTaken { .. }))
                ),
                "the taken name is refused: {outcome:?}"
            );
        } else {
            outcome.expect("every other create is appended");
            created.push(id.to_string());
        }
    }
    a.await.expect("task").expect("the first start is appended");
    let renamed = b.await.expect("task");
    assert!(
        matches!(
            renamed,
            Err(CommandError::Conflict {
                expected: Some(1),
                actual: 2
            })
        ),
        "the rename decided on the same version conflicts: {renamed:?}"
    );
    let transactions = transactions_of(&pool, &created).await;
    assert_eq!(
        transactions.len(),
        1,
        "the five creates were appended in one transaction"
    );
    let start_transaction: String = sqlx::query_scalar(
        "SELECT transaction_id::text FROM events WHERE aggregate_id = $1 AND sequence = 2",
    )
    .bind(taken.to_string())
    .fetch_one(&pool)
    .await
    .expect("the start's event");
    assert_eq!(
        start_transaction, transactions[0],
        "and the start with them"
    );
}

/// An event row as an integration event's commit carries it.
fn integration_event(sequence: usize, payload: serde_json::Value) -> SerializedEvent {
    SerializedEvent::new(
        Uuid::new_v4().to_string(),
        sequence,
        "IntegrationEvent".into(),
        "IntegrationEventPublished".into(),
        "1.0".into(),
        payload,
        json!({}),
    )
}

#[tokio::test]
async fn a_commit_the_store_refuses_fails_alone_and_the_rest_of_its_batch_is_appended() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let (appender, bus) = one_worker(&pool);

    let gate = Gate::close(&db).await;
    let first = hold_worker(&pool, &bus, &appender).await;
    // The store refuses the third: its sequence number does not fit the
    // column (an error, not a conflict), so the whole statement fails.
    let commits = [
        integration_event(1, json!({"n": 1})),
        integration_event(0, json!({"n": 2})),
        SerializedEvent {
            sequence: usize::MAX,
            ..integration_event(1, json!({"n": 3}))
        },
        integration_event(1, json!({"n": 4})),
    ];
    let mut tasks = Vec::new();
    for (queued, event) in (1..).zip(commits) {
        let client = appender.clone();
        tasks.push(tokio::spawn(async move {
            client
                .append(Commit {
                    events: vec![event],
                    snapshot: None,
                })
                .await
        }));
        wait_queued(&appender, queued).await;
    }
    gate.open().await;
    first.await.expect("the first commit");

    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("append task"));
    }
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
    assert!(
        matches!(outcomes[2], Err(AppendError::Internal(_))),
        "the refused commit gets its own error: {:?}",
        outcomes[2]
    );
    assert!(outcomes[3].is_ok(), "{:?}", outcomes[3]);
    let stored: Vec<i64> = sqlx::query_scalar(
        "SELECT (payload ->> 'n')::bigint FROM events \
         WHERE aggregate_type = 'IntegrationEvent' ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .expect("read the stored events");
    assert_eq!(
        stored,
        [1, 2, 4],
        "every commit but the refused one is stored"
    );
    let ids: Vec<Uuid> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok())
        .flat_map(|appended| appended.event_ids.clone())
        .collect();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = ANY($1)")
        .bind(&ids)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(found, 3, "each acknowledgement names its stored event");
}

#[tokio::test]
async fn a_lone_commit_is_appended_without_waiting_for_company() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let (_appender, bus) = one_worker(&pool);
    let (id, outcome) = create_project(&bus, "alone").await;
    assert_eq!(outcome.expect("created").version, 1);
    run(&bus, id, ProjectCommand::StartProject)
        .await
        .expect("started");
    let transactions = transactions_of(&pool, &[id.to_string()]).await;
    assert_eq!(transactions.len(), 2, "each command its own transaction");
}

#[tokio::test]
async fn a_command_answers_with_where_its_last_event_is_in_the_feed() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let (_appender, bus) = one_worker(&pool);
    let (id, created) = create_project(&bus, "Placed").await;
    let created = created.expect("created");
    let rename = || ProjectCommand::RenameProject {
        name: domain::ProjectName::parse("Placed Again").unwrap(),
    };
    let renamed = run(&bus, id, rename()).await.expect("renamed");
    let stored: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT transaction_id::text::bigint, position FROM events \
         WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id.to_string())
    .fetch_all(&pool)
    .await
    .expect("read the events");
    let at = |(transaction_id, position): (i64, i64)| FeedPosition {
        transaction_id,
        position,
    };
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(created.position, Some(at(stored[0])));
    assert_eq!(renamed.position, Some(at(stored[1])));

    // A command that records nothing has no position.
    let unchanged = run(&bus, id, rename())
        .await
        .expect("renaming to the same name is accepted");
    assert_eq!((unchanged.events, unchanged.position), (0, None));
}

/// Concurrent clients in the kill test: enough that batches form.
const CLIENTS: usize = 24;

/// Whether a `hub_append_batch` statement is running in `pool`'s database.
async fn batch_running(pool: &PgPool) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
         WHERE datname = current_database() AND state = 'active' \
           AND query LIKE '%hub_append_batch%' AND pid <> pg_backend_pid())",
    )
    .fetch_one(pool)
    .await
    .expect("read pg_stat_activity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_batches_are_written_keeps_every_acknowledged_command_and_half_applies_none() {
    let mut rng = Rng::new(seed());
    let db = TestDb::create().await;
    let nats = nats_url();
    let spec = HubSpec::new(db.url(), &nats, &hub_id("group-commit"));
    let _stream = DeleteStreamOnDrop {
        url: nats.clone(),
        stream: spec.stream(),
    };
    let pool = db.pool().await;
    let mut hub = HubProcess::start(spec.clone()).await;
    let load = Load::start(vec![hub.endpoint()], CLIENTS, "group", &mut rng);
    for _ in 0..3 {
        load.wait_for_acks(CLIENTS, Duration::from_secs(60)).await;
        // Kill the moment a batch is seen being written (the check itself
        // is the only delay, well under a batch's time on the server).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !batch_running(&pool).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no batch was seen being written under the load"
            );
        }
        hub.kill().await;
        hub.restart().await;
    }
    load.wait_for_acks(CLIENTS, Duration::from_secs(60)).await;
    let ledger = load.finish().await;

    let agreement = wait_for_agreement(
        &pool,
        &nats,
        &spec.stream(),
        &ledger,
        Duration::from_secs(90),
    )
    .await;
    agreement.assert_holds("group commit kill");
    assert!(ledger.acked_count() > CLIENTS, "the load made progress");

    // The load was appended in shared transactions.
    let shared: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT transaction_id FROM events \
         GROUP BY transaction_id HAVING count(DISTINCT aggregate_id) > 1) AS shared",
    )
    .fetch_one(&pool)
    .await
    .expect("count shared transactions");
    assert!(shared > 0, "some commits shared a transaction");

    // Nothing is half-applied: the reservations the events' trigger writes
    // in the same transaction match the events exactly, acknowledged or not.
    let (live, slugs, ports, orphans): (i64, i64, i64, i64) = sqlx::query_as(
        "WITH live AS ( \
             SELECT aggregate_id FROM events WHERE aggregate_type = 'Project' \
             GROUP BY aggregate_id \
             HAVING bool_or(event_type = 'ProjectCreated') \
                AND NOT bool_or(event_type = 'ProjectDeleted')) \
         SELECT (SELECT count(*) FROM live), \
                (SELECT count(*) FROM project_slugs), \
                (SELECT count(*) FROM project_ports), \
                (SELECT count(*) FROM project_slugs s \
                 WHERE NOT EXISTS (SELECT 1 FROM live WHERE live.aggregate_id = s.project_id))",
    )
    .fetch_one(&pool)
    .await
    .expect("compare reservations with events");
    assert_eq!(slugs, live, "one slug per live project");
    assert_eq!(ports, 4 * live, "four ports per live project");
    assert_eq!(orphans, 0, "no slug without its project's events");
    assert!(hub.is_running(), "the last hub still serves");
}
