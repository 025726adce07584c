//! A batch reaches the stream but its checkpoint never commits, and the
//! relay that later publishes from that checkpoint does so after the
//! stream's duplicate window: it must not publish the batch a second time,
//! whether the batch was its own (its connection broke before the commit)
//! or another process's (which then died while this one was cut off).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use domain::{PortRange, ProjectCommand};
use hub_tests::db::server_address;
use hub_tests::feed::{
    checkpoint_handled, command_bus, create_project, migrated_pool, quick_config, run,
    stored_event_ids,
};
use hub_tests::hub::nats_url;
use hub_tests::jetstream::{
    assert_stream_holds, context, message_count, read_stream, DeleteStreamOnDrop,
};
use hub_tests::{wait_until, Proxy, TestDb};
use infrastructure::feed::{
    read_after, spawn_runner, AppendSignal, FeedConsumer as _, FeedHandle, FeedPosition,
};
use infrastructure::nats::{NatsRelay, StreamSettings};
use infrastructure::CommandBus;
use sqlx::PgPool;
use uuid::Uuid;

/// Long enough for an event to reach the relay on a busy test server.
const ARRIVES: Duration = Duration::from_secs(20);

async fn create_and_start(bus: &CommandBus, name: &str) {
    let (id, created) = create_project(bus, name).await;
    created.expect("create a project");
    run(bus, id, ProjectCommand::StartProject)
        .await
        .expect("start it");
}

/// Publishes a message with `Nats-Msg-Id: id`; returns whether JetStream
/// dropped it as a duplicate.
async fn publish_probe(js: &jetstream::Context, subject: &str, id: &str) -> bool {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    js.publish_with_headers(subject.to_owned(), headers, "probe".into())
        .await
        .expect("publish the probe")
        .await
        .expect("the probe is acknowledged")
        .duplicate
}

/// Whether a backend of this database waits for a lock to move a checkpoint.
async fn checkpoint_update_blocked(pool: &PgPool) -> bool {
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock' \
           AND query LIKE 'UPDATE feed_checkpoints%'",
    )
    .fetch_one(pool)
    .await
    .expect("read pg_stat_activity");
    waiting > 0
}

/// Ends the backends of this database waiting for a lock to move a
/// checkpoint, and waits until none is left.
async fn end_blocked_checkpoint_updates(pool: &PgPool) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock' \
           AND query LIKE 'UPDATE feed_checkpoints%'",
    )
    .execute(pool)
    .await
    .expect("terminate the waiting update");
    wait_until("the waiting checkpoint update to end", ARRIVES, || async {
        (!checkpoint_update_blocked(pool).await).then_some(())
    })
    .await;
}

/// A store, a stream with a 500 ms duplicate window, and a relay runner
/// that reaches the database through a proxy that can be cut.
struct Setup {
    _db: TestDb,
    pool: PgPool,
    bus: CommandBus,
    hub_id: String,
    settings: StreamSettings,
    js: jetstream::Context,
    proxy: Proxy,
    relay: FeedHandle,
    _cleanup: DeleteStreamOnDrop,
}

impl Setup {
    /// Starts the relay and lets it handle a first project's two events.
    async fn start() -> Self {
        let db = TestDb::create().await;
        let pool = migrated_pool(&db).await;
        let bus = command_bus(&pool, PortRange::default());
        let hub_id = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let settings = StreamSettings::for_hub(
            &hub_id,
            StreamSettings::default_name(&hub_id),
            Duration::from_millis(500),
        );
        let _cleanup = DeleteStreamOnDrop {
            url: nats_url(),
            stream: settings.name.clone(),
        };
        let js = context(&nats_url()).await;
        let proxy = Proxy::start(server_address(db.url()).await).await;
        let relay = spawn_runner(
            Arc::new(NatsRelay::new(js.clone(), settings.clone(), hub_id.clone())),
            db.url_via(proxy.addr()).parse().expect("a database URL"),
            quick_config(),
            &AppendSignal::default(),
        );
        let setup = Self {
            _db: db,
            pool,
            bus,
            hub_id,
            settings,
            js,
            proxy,
            relay,
            _cleanup,
        };
        create_and_start(&setup.bus, "Before").await;
        setup.wait_for_checkpoint(2).await;
        setup
    }

    async fn wait_for_checkpoint(&self, handled: i64) {
        let what = format!("the relay's checkpoint to count {handled} events");
        wait_until(&what, ARRIVES, || async {
            (checkpoint_handled(&self.pool, NatsRelay::NAME).await == handled).then_some(())
        })
        .await;
    }

    /// Cuts the relay off the database and waits until it notices.
    async fn cut_relay_off(&self) {
        self.proxy.cut();
        wait_until(
            "the relay to notice the lost connection",
            ARRIVES,
            || async { (!self.relay.status().active).then_some(()) },
        )
        .await;
    }

    /// Waits until JetStream has forgotten every id published so far: a
    /// probe published after them is stored again instead of dropped. The
    /// passing of the window is the condition under test; this waits on the
    /// fact instead of sleeping.
    async fn wait_for_the_duplicate_window_to_pass(&self) {
        let probe = format!("hub.{}.test.window_probe", self.hub_id);
        let probe_id = Uuid::new_v4().to_string();
        assert!(!publish_probe(&self.js, &probe, &probe_id).await);
        wait_until(
            "JetStream to forget the published ids",
            Duration::from_secs(10),
            || async { (!publish_probe(&self.js, &probe, &probe_id).await).then_some(()) },
        )
        .await;
    }

    /// Lets the relay back in, waits until it has handled all four events
    /// and checks that the stream holds each once, in feed order.
    async fn restore_and_check(self) {
        self.proxy.restore();
        self.wait_for_checkpoint(4).await;
        self.relay.stop();
        let messages = read_stream(&self.js, &self.settings.name).await;
        assert_stream_holds(&messages, &stored_event_ids(&self.pool).await);
    }
}

#[tokio::test]
async fn a_relay_that_lost_its_checkpoint_commit_publishes_nothing_twice_after_a_database_outage_longer_than_the_duplicate_window(
) {
    let setup = Setup::start().await;
    // Hold the checkpoint table so that the next checkpoint update waits
    // after its batch was published. (LOCK TABLE takes no transaction id,
    // so the feed's visibility fence is not held back.)
    let mut locker = setup.pool.begin().await.expect("begin the locker");
    sqlx::query("LOCK TABLE feed_checkpoints IN EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .expect("lock the checkpoints");
    create_and_start(&setup.bus, "During").await;
    // The batch may hold one or both of the new events.
    wait_until("the relay to publish a new event", ARRIVES, || async {
        message_count(&setup.js, &setup.settings.name)
            .await
            .is_some_and(|n| n > 2)
            .then_some(())
    })
    .await;
    wait_until("the checkpoint update to wait", ARRIVES, || async {
        checkpoint_update_blocked(&setup.pool).await.then_some(())
    })
    .await;

    // The database goes away for the relay before its checkpoint commits:
    // the client side is cut, and the server side of the waiting update
    // ends too (left alone, a lone update would commit by itself once the
    // lock is released).
    setup.cut_relay_off().await;
    end_blocked_checkpoint_updates(&setup.pool).await;
    locker.rollback().await.expect("release the checkpoints");
    assert_eq!(checkpoint_handled(&setup.pool, NatsRelay::NAME).await, 2);
    setup.wait_for_the_duplicate_window_to_pass().await;
    setup.restore_and_check().await;
}

#[tokio::test]

async fn a_relay_that_regains_the_lead_publishes_nothing_twice_that_another_process_published_without_checkpointing(
) {
    let setup = Setup::start().await;
    // This process's relay is cut off; another process takes over, publishes
    // the next batch and dies before its checkpoint commits.
    setup.cut_relay_off().await;
    create_and_start(&setup.bus, "Elsewhere").await;
    let batch = wait_until("the next two events to be readable", ARRIVES, || async {
        let mut conn = setup.pool.acquire().await.ok()?;
        let events = read_after(&mut conn, FeedPosition::START, 100).await.ok()?;
        (events.len() == 4).then(|| events[2..].to_vec())
    })
    .await;
    let other = NatsRelay::new(
        setup.js.clone(),
        setup.settings.clone(),
        setup.hub_id.clone(),
    );
    let mut tx = setup.pool.begin().await.expect("begin the batch");
    other
        .handle(&mut tx, &batch)
        .await
        .expect("publish the batch");
    tx.rollback().await.expect("the other process dies");
    assert_eq!(
        message_count(&setup.js, &setup.settings.name).await,
        Some(4)
    );
    assert_eq!(checkpoint_handled(&setup.pool, NatsRelay::NAME).await, 2);

    // Nobody relays for longer than the duplicate window; then this
    // process's relay gets the database, and the lead, back.
    setup.wait_for_the_duplicate_window_to_pass().await;
    setup.restore_and_check().await;
}
