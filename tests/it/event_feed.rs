//! The event feed against a real PostgreSQL: the gap-safe read order, a late
//! commit, exactly-once delivery into a database consumer and resuming from
//! the checkpoint. Runner coordination, retries and wake-ups are in
//! `feed_runners.rs`.
//!
//! A transaction that appends events holds readers of its database back
//! until it ends (others do not). Waits for an event to arrive use generous
//! deadlines; only claims that something does *not* happen use short
//! windows.

use std::sync::Arc;
use std::time::Duration;

use domain::{PortRange, ProjectCommand};
use hub_tests::feed::{
    append_events, checkpoint_handled, connect_options, create_handled_table, create_project,
    handled_rows, insert_event, migrated_pool, quick_config, run, stored_event_ids,
    RecordingConsumer,
};
use hub_tests::{holds_for, wait_until, TestDb};
use infrastructure::append::Appender;
use infrastructure::feed::{
    read_after, spawn_runner, AppendSignal, FeedPosition, RunnerConfig, StoredEvent,
};
use infrastructure::lookup::PgProjectLookup;
use infrastructure::CommandBus;
use sqlx::PgPool;
use uuid::Uuid;

/// Long enough for any event to become visible on a busy test server.
const ARRIVES: Duration = Duration::from_secs(15);

fn ids(events: &[StoredEvent]) -> Vec<Uuid> {
    events.iter().map(|event| event.event_id).collect()
}

async fn read_all(pool: &PgPool, after: FeedPosition) -> Vec<StoredEvent> {
    let mut conn = pool.acquire().await.expect("a connection");
    read_after(&mut conn, after, 1000)
        .await
        .expect("read the feed")
}

#[tokio::test]
async fn read_after_holds_back_a_later_commit_until_an_earlier_transaction_commits() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let before = append_events(&pool, 1).await[0];

    // A writes first but commits last; B writes second and commits first.
    let mut a = pool.begin().await.expect("begin A");
    let event_a = insert_event(&mut a).await;
    let mut b = pool.begin().await.expect("begin B");
    let event_b = insert_event(&mut b).await;
    b.commit().await.expect("commit B");
    assert!(
        event_a.transaction_id < event_b.transaction_id && event_a.position < event_b.position,
        "A must have both the lower xid and the lower position: {event_a:?} {event_b:?}"
    );

    let visible = wait_until(
        "the event committed before A to be readable",
        ARRIVES,
        || {
            let pool = pool.clone();
            async move {
                let read = read_all(&pool, FeedPosition::START).await;
                (!read.is_empty()).then_some(read)
            }
        },
    )
    .await;
    assert_eq!(
        ids(&visible),
        vec![before],
        "with A open, B (committed, but after A's xid) must not be readable yet"
    );
    let checkpoint = visible[0].feed_position();
    assert!(read_all(&pool, checkpoint).await.is_empty());

    a.commit().await.expect("commit A");
    let read = wait_until("A and B to be readable", ARRIVES, || {
        let pool = pool.clone();
        async move {
            let read = read_all(&pool, checkpoint).await;
            (read.len() >= 2).then_some(read)
        }
    })
    .await;
    assert_eq!(ids(&read), vec![event_a.event_id, event_b.event_id]);
    assert!(read[0].feed_position() < read[1].feed_position());
    // The fence may stand lower for a moment (a transaction of another
    // database that ends while the fence is computed counts as a writer),
    // never higher: the whole log is read once it has moved.
    let all = wait_until("the whole log to be readable", ARRIVES, || {
        let pool = pool.clone();
        async move {
            let read = read_all(&pool, FeedPosition::START).await;
            (read.len() >= 3).then_some(read)
        }
    })
    .await;
    assert_eq!(ids(&all), vec![before, event_a.event_id, event_b.event_id]);
}

#[tokio::test]
async fn read_after_orders_by_transaction_even_where_positions_disagree() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;

    // A appends first (so it has the lower xid), B appends and commits, and
    // A appends again: A's second event has the lower xid but the higher
    // position.
    let mut a = pool.begin().await.expect("begin A");
    let first_a = insert_event(&mut a).await;
    let mut b = pool.begin().await.expect("begin B");
    let event_b = insert_event(&mut b).await;
    b.commit().await.expect("commit B");
    let event_a = insert_event(&mut a).await;
    assert_eq!(event_a.transaction_id, first_a.transaction_id);
    assert!(
        event_a.transaction_id < event_b.transaction_id && event_a.position > event_b.position,
        "A must have the lower xid but the higher position: {event_a:?} {event_b:?}"
    );
    assert!(
        read_all(&pool, FeedPosition::START).await.is_empty(),
        "B must wait for the older transaction A, which can still append"
    );

    a.commit().await.expect("commit A");
    let read = wait_until("A and B to be readable", ARRIVES, || {
        let pool = pool.clone();
        async move {
            let read = read_all(&pool, FeedPosition::START).await;
            (read.len() >= 3).then_some(read)
        }
    })
    .await;
    assert_eq!(
        ids(&read),
        vec![first_a.event_id, event_a.event_id, event_b.event_id]
    );
    // Resuming after A yields B, though B's position is lower than A's.
    assert_eq!(
        ids(&read_all(&pool, read[1].feed_position()).await),
        vec![event_b.event_id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_never_skips_a_late_commit_and_handles_both_events_once() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let before = append_events(&pool, 1).await[0];

    let mut a = pool.begin().await.expect("begin A");
    let event_a = insert_event(&mut a).await;
    let mut b = pool.begin().await.expect("begin B");
    let event_b = insert_event(&mut b).await;
    b.commit().await.expect("commit B");
    assert!(event_a.transaction_id < event_b.transaction_id);

    let consumer = Arc::new(RecordingConsumer::in_memory("late-commit"));
    let signal = AppendSignal::default();
    let handle = spawn_runner(
        consumer.clone(),
        connect_options(&db),
        quick_config(),
        &signal,
    );
    wait_until("the runner to handle the event before A", ARRIVES, || {
        let seen = consumer.seen();
        async move { (!seen.is_empty()).then_some(()) }
    })
    .await;
    assert_eq!(consumer.seen(), vec![before]);

    let a_at = FeedPosition {
        transaction_id: event_a.transaction_id,
        position: event_a.position,
    };
    signal.notify();
    // The runner polls every 50 ms at most: ten chances to skip ahead.
    holds_for(
        "the runner staying behind A while A is open",
        Duration::from_millis(500),
        || {
            let (seen, status) = (consumer.seen(), handle.status());
            async move { seen == vec![before] && status.checkpoint < a_at }
        },
    )
    .await;

    a.commit().await.expect("commit A");
    signal.notify();
    wait_until("the runner to handle A and B", ARRIVES, || {
        let seen = consumer.seen();
        async move { (seen.len() >= 3).then_some(()) }
    })
    .await;
    assert_eq!(
        consumer.seen(),
        vec![before, event_a.event_id, event_b.event_id]
    );

    // A later event arrives alone: nothing before it was delivered again.
    let fence = append_events(&pool, 1).await[0];
    wait_until("the runner to commit the fence event", ARRIVES, || {
        let status = handle.status();
        async move { (status.handled >= 4).then_some(()) }
    })
    .await;
    assert_eq!(
        consumer.seen(),
        vec![before, event_a.event_id, event_b.event_id, fence]
    );
    assert_eq!(handle.status().handled, 4);
    assert_eq!(checkpoint_handled(&pool, "late-commit").await, 4);
}

/// Writes through the command bus from `writers` tasks, `projects` projects
/// each (create, start requested, start completed, stop requested: four
/// events), plus transactions of three raw events whose commits are held
/// back a moment so they interleave with the commands.
async fn write_concurrently(pool: &PgPool, signal: &AppendSignal, writers: usize, projects: usize) {
    let bus = Arc::new(CommandBus::new(
        pool.clone(),
        PgProjectLookup::new(pool.clone(), PortRange::default()),
        Appender::start(pool.clone(), signal.clone()),
    ));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..projects {
                let (id, created) = create_project(&bus, &format!("Writer {writer} No {n}")).await;
                created.expect("create a project");
                let requested = run(&bus, id, ProjectCommand::StartProject)
                    .await
                    .expect("start it");
                // No process manager runs here: complete the start as it would.
                let request = requested.version;
                run(&bus, id, ProjectCommand::CompleteStart { request })
                    .await
                    .expect("complete the start");
                run(&bus, id, ProjectCommand::StopProject)
                    .await
                    .expect("stop it");
            }
        }));
    }
    let raw_pool = pool.clone();
    let raw_signal = signal.clone();
    tasks.push(tokio::spawn(async move {
        for _ in 0..projects {
            let mut tx = raw_pool.begin().await.expect("begin");
            for _ in 0..3 {
                insert_event(&mut tx).await;
                // Commands commit in between, with later xids.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tx.commit().await.expect("commit");
            raw_signal.notify();
        }
    }));
    for task in tasks {
        task.await.expect("writer task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_consumer_records_every_concurrently_written_event_exactly_once() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    create_handled_table(&pool).await;

    let consumer = Arc::new(RecordingConsumer::in_table("exactly-once", "only"));
    let signal = AppendSignal::default();
    // Small batches: many checkpoints, racing with the writers.
    let config = RunnerConfig {
        batch_size: 7,
        ..quick_config()
    };
    let handle = spawn_runner(consumer.clone(), connect_options(&db), config, &signal);

    let (writers, projects) = (6, 12);
    write_concurrently(&pool, &signal, writers, projects).await;
    let expected = stored_event_ids(&pool).await;
    assert_eq!(expected.len(), writers * projects * 4 + projects * 3);

    let total = expected.len() as i64;
    wait_until("the consumer to handle every event", ARRIVES, || {
        let status = handle.status();
        async move { (status.handled >= total).then_some(()) }
    })
    .await;
    let rows = handled_rows(&pool).await;
    let recorded: Vec<Uuid> = rows.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        recorded.len(),
        expected.len(),
        "each event exactly once, no more, no less"
    );
    assert_eq!(recorded, expected, "every event once, in feed order");
    assert_eq!(handle.status().handled, total);
    assert_eq!(checkpoint_handled(&pool, "exactly-once").await, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runner_resumes_after_its_checkpoint() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let signal = AppendSignal::default();
    let first_events = append_events(&pool, 5).await;

    let first = Arc::new(RecordingConsumer::in_memory("restart"));
    let handle = spawn_runner(first.clone(), connect_options(&db), quick_config(), &signal);
    wait_until("the first runner to handle five events", ARRIVES, || {
        let status = handle.status();
        async move { (status.handled >= 5).then_some(()) }
    })
    .await;
    drop(handle);

    let later_events = append_events(&pool, 3).await;
    let second = Arc::new(RecordingConsumer::in_memory("restart"));
    let handle = spawn_runner(
        second.clone(),
        connect_options(&db),
        quick_config(),
        &signal,
    );
    wait_until("the new runner to commit three events", ARRIVES, || {
        let status = handle.status();
        async move { (status.handled >= 8).then_some(()) }
    })
    .await;
    assert_eq!(
        second.seen(),
        later_events,
        "only the events after the checkpoint"
    );
    assert_eq!(
        first.seen(),
        first_events,
        "the stopped runner handled nothing more"
    );
    assert_eq!(handle.status().handled, 8);
    assert_eq!(checkpoint_handled(&pool, "restart").await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runners_of_one_process_share_their_reads_and_each_handle_every_event_once() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    // One signal: the runners read the log through one shared window.
    let signal = AppendSignal::default();
    let runners: Vec<_> = [1, 7, 1000]
        .into_iter()
        .map(|batch_size| {
            let consumer = Arc::new(RecordingConsumer::in_memory(&format!(
                "shared-{batch_size}"
            )));
            let config = RunnerConfig {
                batch_size,
                ..quick_config()
            };
            let handle = spawn_runner(consumer.clone(), connect_options(&db), config, &signal);
            (consumer, handle)
        })
        .collect();

    // Concurrent commands and late-committing raw transactions.
    write_concurrently(&pool, &signal, 4, 10).await;
    // One more runner starts far behind the others' window.
    let late = Arc::new(RecordingConsumer::in_memory("shared-late"));
    let late_handle = spawn_runner(late.clone(), connect_options(&db), quick_config(), &signal);
    let expected = stored_event_ids(&pool).await;
    let total = expected.len() as i64;
    assert_eq!(total, 4 * 10 * 4 + 10 * 3);

    for (consumer, handle) in runners
        .iter()
        .map(|(c, h)| (c, h))
        .chain(std::iter::once((&late, &late_handle)))
    {
        wait_until("every runner to handle every event", ARRIVES, || {
            let status = handle.status();
            async move { (status.handled >= total).then_some(()) }
        })
        .await;
        assert_eq!(
            consumer.seen(),
            expected,
            "{}: every event once, in feed order",
            handle.name()
        );
        assert_eq!(checkpoint_handled(&pool, handle.name()).await, total);
    }
}

/// Writers that append in random sizes and orders, commit late or roll
/// back, beside bystanders writing another table, while a reader follows
/// the feed from its checkpoint: the reader sees every committed event
/// exactly once, and nothing rolled back. Races between a writer's commit
/// and the fence's snapshot and lock reads happen here by the thousand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_late_commits_and_bystanders_lose_nothing() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    sqlx::query("CREATE TABLE bystanding (x int)")
        .execute(&pool)
        .await
        .expect("create a bystanders' table");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (pool, stop) = (pool.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut committed = Vec::new();
            let mut round = w;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round = round
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let mut tx = pool.begin().await.expect("begin a writer");
                let mut mine = Vec::new();
                for _ in 0..=(round >> 60) % 3 {
                    mine.push(insert_event(&mut tx).await.event_id);
                }
                if (round >> 40) % 4 == 0 {
                    // Held open while others commit after it.
                    tokio::time::sleep(Duration::from_millis((round >> 50) % 20)).await;
                }
                if (round >> 30) % 7 == 0 {
                    tx.rollback().await.expect("roll back");
                } else {
                    tx.commit().await.expect("commit");
                    committed.extend(mine);
                }
            }
            committed
        }));
    }
    let bystander = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut tx = pool.begin().await.expect("begin a bystander");
                sqlx::query("INSERT INTO bystanding VALUES (1)")
                    .execute(&mut *tx)
                    .await
                    .expect("a bystander's write");
                tokio::time::sleep(Duration::from_millis(30)).await;
                tx.commit().await.expect("commit a bystander");
            }
        })
    };
    let mut seen: Vec<Uuid> = Vec::new();
    let mut checkpoint = FeedPosition::START;
    let read_until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < read_until {
        let batch = read_all(&pool, checkpoint).await;
        if let Some(last) = batch.last() {
            checkpoint = last.feed_position();
        }
        seen.extend(ids(&batch));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut committed = Vec::new();
    for writer in writers {
        committed.extend(writer.await.expect("a writer"));
    }
    bystander.await.expect("the bystander");
    // The rest, now that every writer has ended.
    loop {
        let batch = read_all(&pool, checkpoint).await;
        let Some(last) = batch.last() else { break };
        checkpoint = last.feed_position();
        seen.extend(ids(&batch));
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no event read twice");
    committed.sort();
    let missing: Vec<&Uuid> = committed
        .iter()
        .filter(|id| unique.binary_search(id).is_err())
        .collect();
    let extra: Vec<&Uuid> = unique
        .iter()
        .filter(|id| committed.binary_search(id).is_err())
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "of {} committed events, {} were never read: {missing:?}; {} read were never committed: {extra:?}",
        committed.len(),
        missing.len(),
        extra.len()
    );
    assert!(
        committed.len() > 100,
        "the writers wrote: {}",
        committed.len()
    );
}
