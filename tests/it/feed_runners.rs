//! Feed runners against a real PostgreSQL: one active runner per consumer
//! across processes with a takeover on stop, retries with backoff when a
//! consumer fails, and how an idle runner is woken (in-process signal or
//! polling).
//!
//! Any transaction that is writing anywhere on the server (another test's
//! database included) holds every feed reader back until it ends, so waits
//! for an event use generous deadlines; only claims that something does
//! *not* happen use short windows.

use std::sync::Arc;
use std::time::Duration;

use hub_tests::feed::{
    append_events, checkpoint_handled, connect_options, create_handled_table, handled_rows,
    insert_event, migrated_pool, quick_config, stored_event_ids, FlakyConsumer, RecordingConsumer,
    FLAKY_ERROR,
};
use hub_tests::{holds_for, wait_until, TestDb};
use infrastructure::feed::{
    read_after, spawn_runner, AppendSignal, FeedHandle, FeedPosition, RunnerConfig,
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// Long enough for any event to become visible on a busy test server.
const ARRIVES: Duration = Duration::from_secs(15);

async fn wait_for_handled(what: &str, handle: &FeedHandle, count: i64) {
    wait_until(what, ARRIVES, || {
        let status = handle.status();
        async move { (status.handled >= count).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runners_of_one_consumer_take_turns_and_handle_every_event_once() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    create_handled_table(&pool).await;
    let signal = AppendSignal::default();

    // Two "processes": separate consumer instances, separate connections.
    let one = Arc::new(RecordingConsumer::in_table("shared", "one"));
    let two = Arc::new(RecordingConsumer::in_table("shared", "two"));
    let handles = [
        spawn_runner(
            one.clone(),
            connect_options(&db).application_name("runner-one"),
            quick_config(),
            &signal,
        ),
        spawn_runner(
            two.clone(),
            connect_options(&db).application_name("runner-two"),
            quick_config(),
            &signal,
        ),
    ];
    let active = wait_until("one runner to become active", ARRIVES, || {
        let active: Vec<bool> = handles.iter().map(|h| h.status().active).collect();
        async move { active.iter().position(|a| *a) }
    })
    .await;
    let standby = 1 - active;
    let names = ["one", "two"];

    // Events arrive while we watch: exactly one runner is active throughout.
    let writer = {
        let pool = pool.clone();
        let signal = signal.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                append_events(&pool, 5).await;
                signal.notify();
                tokio::task::yield_now().await;
            }
        })
    };
    holds_for(
        "exactly one active runner",
        Duration::from_millis(500),
        || {
            let active: Vec<bool> = handles.iter().map(|h| h.status().active).collect();
            async move { active[0] != active[1] }
        },
    )
    .await;
    writer.await.expect("writer");
    wait_for_handled(
        "the active runner to handle 50 events",
        &handles[active],
        50,
    )
    .await;
    assert_eq!(handles[active].status().handled, 50);
    assert!(!handles[standby].status().active);
    assert_eq!(handles[standby].status().batches, 0);
    let rows = handled_rows(&pool).await;
    assert!(rows.iter().all(|(instance, _)| instance == names[active]));

    // Stop the active runner while events keep coming: the standby takes
    // over from the checkpoint, whatever the stopped one was in the middle of.
    let writer = {
        let pool = pool.clone();
        let signal = signal.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                append_events(&pool, 3).await;
                signal.notify();
            }
        })
    };
    handles[active].stop();
    wait_until("the standby to take over", Duration::from_secs(5), || {
        let status = handles[standby].status();
        async move { status.active.then_some(()) }
    })
    .await;
    writer.await.expect("writer");
    wait_for_handled("the standby to catch up", &handles[standby], 80).await;

    let expected = stored_event_ids(&pool).await;
    assert_eq!(expected.len(), 80);
    let rows = handled_rows(&pool).await;
    let recorded: Vec<Uuid> = rows.iter().map(|(_, id)| *id).collect();
    assert_eq!(recorded, expected, "every event once, in feed order");
    // What each runner committed is one unbroken stretch of the feed.
    let switch = rows
        .iter()
        .position(|(instance, _)| instance == names[standby])
        .expect("the standby handled the later events");
    assert!(switch >= 50);
    assert!(rows[switch..]
        .iter()
        .all(|(instance, _)| instance == names[standby]));
    assert_eq!(handles[standby].status().handled, 80);
    assert_eq!(checkpoint_handled(&pool, "shared").await, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_runner_no_longer_reports_itself_active() {
    let db = TestDb::create().await;
    migrated_pool(&db).await;
    let consumer = Arc::new(RecordingConsumer::in_memory("stopping"));
    let handle = spawn_runner(
        consumer,
        connect_options(&db),
        quick_config(),
        &AppendSignal::default(),
    );
    wait_until("the runner to become active", ARRIVES, || {
        let status = handle.status();
        async move { status.active.then_some(()) }
    })
    .await;

    handle.stop();
    // `active` means "this process holds the lock and runs the consumer"
    // (health reports it as `active_here`); after `stop` it does neither.
    wait_until(
        "the stopped runner to report itself inactive",
        Duration::from_secs(2),
        || {
            let status = handle.status();
            async move { (!status.active).then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_retried_until_it_succeeds_and_is_handled_once() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    create_handled_table(&pool).await;
    let event = append_events(&pool, 1).await[0];

    let consumer = Arc::new(FlakyConsumer::new("flaky", 3));
    let signal = AppendSignal::default();
    let handle = spawn_runner(
        consumer.clone(),
        connect_options(&db),
        quick_config(),
        &signal,
    );

    let failing = wait_until("the runner to report the failure", ARRIVES, || {
        let status = handle.status();
        async move { (status.consecutive_failures >= 1).then_some(status) }
    })
    .await;
    let error = failing.last_error.expect("the failure's message");
    assert!(error.contains(FLAKY_ERROR), "{error}");
    assert_eq!(failing.handled, 0);
    assert!(
        failing.active,
        "a failing consumer keeps its lock; only its batch is retried"
    );

    wait_for_handled("the batch to succeed", &handle, 1).await;
    let status = handle.status();
    assert_eq!(status.last_error, None);
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(consumer.attempts(), 4, "three failures, then one success");
    assert_eq!(consumer.seen(), vec![event]);
    // The failed attempts wrote rows too; they were rolled back with the batch.
    assert_eq!(handled_rows(&pool).await, vec![("flaky".to_owned(), event)]);

    // The next event is handled once, and the first is not handled again.
    let next = append_events(&pool, 1).await[0];
    signal.notify();
    wait_for_handled("the next event", &handle, 2).await;
    assert_eq!(consumer.attempts(), 5);
    assert_eq!(
        handled_rows(&pool).await,
        vec![("flaky".to_owned(), event), ("flaky".to_owned(), next)]
    );
    assert_eq!(checkpoint_handled(&pool, "flaky").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_keeps_failing_is_retried_with_growing_backoff_not_in_a_loop() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    create_handled_table(&pool).await;
    append_events(&pool, 1).await;

    let consumer = Arc::new(FlakyConsumer::new("stuck", u32::MAX));
    let config = RunnerConfig {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(10),
        ..quick_config()
    };
    let handle = spawn_runner(
        consumer.clone(),
        connect_options(&db),
        config,
        &AppendSignal::default(),
    );
    wait_until("the first attempt", ARRIVES, || {
        let attempts = consumer.attempts();
        async move { (attempts >= 1).then_some(()) }
    })
    .await;

    // Backoff 50, 100, 200, 400 ms... allows about five attempts in a
    // second; a runner retrying in a loop would make hundreds.
    holds_for("fewer than 20 attempts", Duration::from_secs(1), || {
        let attempts = consumer.attempts();
        async move { attempts < 20 }
    })
    .await;
    let attempts = consumer.attempts();
    assert!(attempts >= 3, "it does retry: {attempts} attempts");

    let status = handle.status();
    assert!(status.consecutive_failures >= 3, "{status:?}");
    assert!(status
        .last_error
        .as_deref()
        .is_some_and(|error| error.contains(FLAKY_ERROR)));
    assert_eq!(status.handled, 0);
    assert!(
        handled_rows(&pool).await.is_empty(),
        "every attempt rolled back"
    );
}

/// Waits until the runner connected as `application_name` has finished a read
/// that found nothing: its connection is idle after `ROLLBACK`, so the runner
/// is waiting for a wake-up or its poll timer.
/// Waits until the runner has read the log at least once and found nothing.
async fn wait_for_idle_runner(handle: &FeedHandle) {
    wait_until("the runner to go idle after an empty read", ARRIVES, || {
        let status = handle.status();
        async move { (status.active && status.polls >= 1 && status.handled == 0).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_wakes_a_runner_that_would_not_poll_for_a_minute() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let signal = AppendSignal::default();
    let config = RunnerConfig {
        min_poll: Duration::from_secs(60),
        max_poll: Duration::from_secs(60),
        ..quick_config()
    };
    let consumer = Arc::new(RecordingConsumer::in_memory("wake"));
    let connect = connect_options(&db).application_name("feed-wake-test");
    let handle = spawn_runner(consumer.clone(), connect, config, &signal);
    wait_for_idle_runner(&handle).await;

    let event = append_events(&pool, 1).await[0];
    // Without a notify the runner sleeps on: the wake below is what moves it.
    holds_for(
        "the runner not polling on its own",
        Duration::from_secs(1),
        || {
            let seen = consumer.seen();
            async move { seen.is_empty() }
        },
    )
    .await;

    // A transaction open anywhere on the server can hide the event from one
    // read, so notify again until it is seen; the deadline is still far
    // below the runner's one-minute poll.
    wait_until("the woken runner to handle the event", ARRIVES, || {
        signal.notify();
        let seen = consumer.seen();
        async move { (!seen.is_empty()).then_some(()) }
    })
    .await;
    assert_eq!(consumer.seen(), vec![event]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_from_another_process_is_found_by_polling_without_a_notify() {
    let db = TestDb::create().await;
    let _pool = migrated_pool(&db).await;
    // Nobody in this "process" notifies: the runner can only poll.
    let signal = AppendSignal::default();
    let consumer = Arc::new(RecordingConsumer::in_memory("polling"));
    let connect = connect_options(&db).application_name("feed-poll-test");
    let handle = spawn_runner(consumer.clone(), connect, quick_config(), &signal);
    wait_for_idle_runner(&handle).await;

    let mut other_process = PgConnection::connect(db.url())
        .await
        .expect("connect as another process");
    let event = insert_event(&mut other_process).await;
    other_process.close().await.expect("disconnect");

    wait_until("the polling runner to handle the event", ARRIVES, || {
        let seen = consumer.seen();
        async move { (!seen.is_empty()).then_some(()) }
    })
    .await;
    assert_eq!(consumer.seen(), vec![event.event_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_whose_writers_are_all_gone_still_backs_off_to_max_poll() {
    let db = TestDb::create().await;
    let _pool = migrated_pool(&db).await;
    let consumer = Arc::new(RecordingConsumer::in_memory("orphaned"));
    let connect = connect_options(&db).application_name("feed-orphan-test");
    // A process that runs feeds but writes nothing (e.g. a relay): its
    // signal is dropped once the runner has subscribed.
    let signal = AppendSignal::default();
    let handle = spawn_runner(consumer, connect, quick_config(), &signal);
    drop(signal);
    wait_for_idle_runner(&handle).await;

    // At max_poll (50 ms) three seconds hold about 60 empty reads; polling
    // at min_poll (1 ms) makes well over a thousand.
    let before = handle.status().polls;
    holds_for("fewer than 150 empty reads", Duration::from_secs(3), || {
        let polls = handle.status().polls;
        async move { polls - before < 150 }
    })
    .await;
}

/// A consumer that writes nothing to the database: it records, per batch,
/// the events and whether it was handed an open transaction.
struct NonWriting {
    batches: std::sync::Mutex<Vec<(Vec<Uuid>, bool)>>,
}

#[async_trait::async_trait]
impl infrastructure::feed::FeedConsumer for NonWriting {
    fn name(&self) -> &str {
        "non_writing"
    }

    fn writes(&self, _events: &[infrastructure::feed::StoredEvent]) -> bool {
        false
    }

    async fn handle(
        &self,
        conn: &mut PgConnection,
        events: &[infrastructure::feed::StoredEvent],
    ) -> Result<(), infrastructure::feed::ConsumerError> {
        // Outside a transaction block each statement is its own transaction,
        // with a transaction id of its own.
        let mut xids = Vec::new();
        for _ in 0..2 {
            let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
                .fetch_one(&mut *conn)
                .await?;
            xids.push(xid);
        }
        let in_transaction = xids[0] == xids[1];
        let ids = events.iter().map(|event| event.event_id).collect();
        self.batches
            .lock()
            .expect("batches lock")
            .push((ids, in_transaction));
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_that_writes_nothing_is_checkpointed_without_a_transaction() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let signal = AppendSignal::default();
    let consumer = Arc::new(NonWriting {
        batches: std::sync::Mutex::new(Vec::new()),
    });
    let handle = spawn_runner(
        consumer.clone(),
        connect_options(&db),
        quick_config(),
        &signal,
    );
    let mut appended = Vec::new();
    for _ in 0..4 {
        appended.extend(append_events(&pool, 3).await);
        signal.notify();
    }
    wait_for_handled("the non-writing consumer", &handle, 12).await;
    wait_until(
        "the checkpoint row to count every event",
        ARRIVES,
        || async { (checkpoint_handled(&pool, "non_writing").await == 12).then_some(()) },
    )
    .await;
    let batches = consumer.batches.lock().expect("batches lock").clone();
    let seen: Vec<Uuid> = batches.iter().flat_map(|(ids, _)| ids.clone()).collect();
    assert_eq!(seen, appended, "every event once, in order");
    assert!(
        batches.iter().all(|(_, in_transaction)| !in_transaction),
        "{batches:?}"
    );
}

/// A consumer that writes nothing and waits at a gate in every batch, so a
/// test can hold it between two batches.
struct Gated {
    seen: std::sync::Mutex<Vec<Uuid>>,
    gate: tokio::sync::Semaphore,
}

impl Gated {
    fn seen(&self) -> Vec<Uuid> {
        self.seen.lock().expect("seen lock").clone()
    }
}

#[async_trait::async_trait]
impl infrastructure::feed::FeedConsumer for Gated {
    fn name(&self) -> &str {
        "gated"
    }

    fn writes(&self, _events: &[infrastructure::feed::StoredEvent]) -> bool {
        false
    }

    async fn handle(
        &self,
        _conn: &mut PgConnection,
        events: &[infrastructure::feed::StoredEvent],
    ) -> Result<(), infrastructure::feed::ConsumerError> {
        self.seen
            .lock()
            .expect("seen lock")
            .extend(events.iter().map(|event| event.event_id));
        self.gate.acquire().await?.forget();
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_that_writes_nothing_saves_its_checkpoint_late_under_load_and_at_once_when_idle()
{
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let signal = AppendSignal::default();
    let consumer = Arc::new(Gated {
        seen: std::sync::Mutex::new(Vec::new()),
        gate: tokio::sync::Semaphore::new(0),
    });
    let config = RunnerConfig {
        batch_size: 3,
        checkpoint_delay: Duration::from_secs(3600),
        ..quick_config()
    };
    // The first three are committed before the runner starts, so its first
    // read takes all three (appended while it runs, it might take one or two
    // and wait at the gate with them).
    let mut appended = append_events(&pool, 3).await;
    let handle = spawn_runner(consumer.clone(), connect_options(&db), config, &signal);
    wait_until("the first batch to reach the consumer", ARRIVES, || {
        let seen = consumer.seen();
        async move { (seen.len() == 3).then_some(()) }
    })
    .await;
    // The next batch is readable when the first one ends: no idle moment.
    // (A transaction elsewhere on the server can hold new events back for
    // a while: wait until they can be read.)
    appended.extend(append_events(&pool, 3).await);
    wait_until("the next three events to be readable", ARRIVES, || async {
        let mut conn = pool.acquire().await.ok()?;
        let events = read_after(&mut conn, FeedPosition::START, 10).await.ok()?;
        (events.len() == 6).then_some(())
    })
    .await;
    consumer.gate.add_permits(1);
    wait_until("the second batch to reach the consumer", ARRIVES, || {
        let seen = consumer.seen();
        async move { (seen.len() == 6).then_some(()) }
    })
    .await;
    assert_eq!(handle.status().handled, 3, "the first batch is done");
    assert_eq!(
        checkpoint_handled(&pool, "gated").await,
        0,
        "its checkpoint waits (for up to an hour here) while batches follow"
    );

    // Once nothing new is left, the row catches up without waiting.
    consumer.gate.add_permits(100);
    wait_until(
        "the checkpoint row to count both batches",
        ARRIVES,
        || async { (checkpoint_handled(&pool, "gated").await == 6).then_some(()) },
    )
    .await;
    assert_eq!(consumer.seen(), appended, "every event once, in order");
}
