//! Project snapshots against a real PostgreSQL: a long history loads from
//! its latest snapshot and the events after it, and a snapshot that no
//! longer deserializes is ignored.

use domain::{PortRange, ProjectCommand, ProjectId, ProjectName};
use hub_tests::feed::{command_bus, create_project, migrated_pool, run};
use hub_tests::TestDb;
use infrastructure::commands::SNAPSHOT_EVERY;
use infrastructure::{CommandBus, CommandError};
use sqlx::PgPool;

/// Starts and stops `id` (with its completions) until it has `events` events.
async fn cycle_until(bus: &CommandBus, id: ProjectId, events: u64) -> u64 {
    let mut version = 1;
    while version + 4 <= events {
        let requested = run(bus, id, ProjectCommand::StartProject)
            .await
            .expect("request a start");
        let request = requested.version;
        run(bus, id, ProjectCommand::CompleteStart { request })
            .await
            .expect("complete the start");
        let requested = run(bus, id, ProjectCommand::StopProject)
            .await
            .expect("request a stop");
        let request = requested.version;
        version = run(bus, id, ProjectCommand::CompleteStop { request })
            .await
            .expect("complete the stop")
            .version;
    }
    version
}

async fn snapshot_of(pool: &PgPool, id: ProjectId) -> Vec<(i64, i64)> {
    sqlx::query_as(
        "SELECT last_sequence, current_snapshot FROM snapshots \
         WHERE aggregate_type = 'Project' AND aggregate_id = $1",
    )
    .bind(id.to_string())
    .fetch_all(pool)
    .await
    .expect("read the snapshots")
}

#[tokio::test]
async fn a_long_history_is_snapshotted_and_commands_go_on_from_the_snapshot() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, PortRange::default());
    let (id, created) = create_project(&bus, "Long History").await;
    created.expect("create");
    let every = SNAPSHOT_EVERY as u64;

    let version = cycle_until(&bus, id, 2 * every + 10).await;
    assert!(version > 2 * every, "{version}");
    assert_eq!(
        snapshot_of(&pool, id).await,
        vec![(2 * every as i64, 2)],
        "one row per project, updated at every {every}th event"
    );
    // The state loaded from the snapshot decides as the full history would.
    let err = run(&bus, id, ProjectCommand::StopProject)
        .await
        .expect_err("a stopped project cannot stop");
    assert!(err.to_string().contains("is not running"), "{err}");
    let requested = run(&bus, id, ProjectCommand::StartProject)
        .await
        .expect("start it again");
    assert_eq!(requested.version, version + 1);
}

#[tokio::test]
async fn a_snapshot_that_no_longer_deserializes_is_ignored_and_the_history_replayed() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, PortRange::default());
    let (id, created) = create_project(&bus, "Changed Shape").await;
    created.expect("create");
    let every = SNAPSHOT_EVERY as u64;
    let version = cycle_until(&bus, id, every + 5).await;
    sqlx::query("UPDATE snapshots SET payload = '{\"shape\": \"of an older release\"}'")
        .execute(&pool)
        .await
        .expect("spoil the snapshot");

    let requested = run(&bus, id, ProjectCommand::StartProject)
        .await
        .expect("a command loads the project from its events");
    assert_eq!(requested.version, version + 1);
    let err = run(&bus, id, ProjectCommand::StartProject)
        .await
        .expect_err("a starting project cannot start again");
    assert!(
        matches!(err, CommandError::Rejected(_)),
        "rejected by the replayed state: {err}"
    );

    // The next snapshots replace the spoiled one: one row, kept up to date.
    let request = version + 1;
    run(&bus, id, ProjectCommand::CompleteStart { request })
        .await
        .expect("complete the start");
    let stop = run(&bus, id, ProjectCommand::StopProject)
        .await
        .expect("request a stop");
    run(
        &bus,
        id,
        ProjectCommand::CompleteStop {
            request: stop.version,
        },
    )
    .await
    .expect("complete the stop");
    let version = cycle_until(&bus, id, 3 * every + 5).await;
    assert!(version > 3 * every, "{version}");
    // Counted again from the replay: the first snapshot after it, then this one.
    assert_eq!(snapshot_of(&pool, id).await, vec![(3 * every as i64, 2)]);
}

#[tokio::test]
async fn a_commit_of_two_events_that_reaches_a_snapshot_with_its_first_snapshots_both() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, PortRange::default());
    let (id, created) = create_project(&bus, "Restarted Across").await;
    created.expect("create");
    let every = SNAPSHOT_EVERY as u64;
    // The restart is requested as event `every - 1`, so completing its
    // stop records events `every` and `every + 1` in one commit: the
    // snapshot is due at the first of them.
    let mut version = cycle_until(&bus, id, every - 4).await;
    while version < every - 4 {
        let name = ProjectName::parse(&format!("Restarted Across {version}")).expect("a name");
        version = run(&bus, id, ProjectCommand::RenameProject { name })
            .await
            .expect("rename")
            .version;
    }
    let requested = run(&bus, id, ProjectCommand::StartProject)
        .await
        .expect("request a start");
    run(
        &bus,
        id,
        ProjectCommand::CompleteStart {
            request: requested.version,
        },
    )
    .await
    .expect("complete the start");
    let restart = run(&bus, id, ProjectCommand::RestartProject)
        .await
        .expect("request a restart");
    assert_eq!(restart.version, every - 1);
    let stopped = run(
        &bus,
        id,
        ProjectCommand::CompleteStop {
            request: restart.version,
        },
    )
    .await
    .expect("complete the restart's stop");
    assert_eq!((stopped.version, stopped.events), (every + 1, 2));
    assert_eq!(snapshot_of(&pool, id).await, vec![(every as i64 + 1, 1)]);

    // Loaded from that snapshot, the project still waits for the start its
    // restart requested with the second event.
    let started = run(
        &bus,
        id,
        ProjectCommand::CompleteStart { request: every + 1 },
    )
    .await
    .expect("the start requested by the restart is pending");
    assert_eq!(started.version, every + 2);
}

#[tokio::test]
async fn the_upgrade_removes_the_snapshots_an_earlier_version_may_have_taken_wrong() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    // The schema before the fix, holding a snapshot of each kind: one taken
    // at a multiple of 50 (always right) and one recorded as of a two-event
    // commit's second event (the earlier version stored the state after
    // its first).
    hub_tests::db::migrate_before(&pool, "snapshots after the whole commit").await;
    for (id, last_sequence) in [("at-fifty", 50_i64), ("past-fifty", 51), ("hundred", 100)] {
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
             VALUES ('Project', $1, $2, 1, '{}')",
        )
        .bind(id)
        .bind(last_sequence)
        .execute(&pool)
        .await
        .unwrap();
    }

    infrastructure::db::migrate(&pool).await.unwrap();
    let kept: Vec<String> =
        sqlx::query_scalar("SELECT aggregate_id FROM snapshots ORDER BY aggregate_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kept, ["at-fifty", "hundred"]);
}
