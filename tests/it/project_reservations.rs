//! Slug and port reservations (`migrations/0002`): made and freed by the
//! store's trigger in the transaction that writes the event, driven through
//! the real command bus and `PgProjectLookup`.

use std::time::Duration;

use domain::{
    PortRange, ProjectCommand, ProjectError, ProjectEvent, ProjectId, ProjectName, ProjectPath,
    Slug,
};
use hub_tests::feed::{command_bus, create_project, migrated_pool, run};
use hub_tests::{wait_until, TestDb};
use infrastructure::CommandError;
use sqlx::{Connection, PgConnection, PgPool};

/// A range of exactly one block of four ports.
fn one_block() -> PortRange {
    PortRange::new(30000, 30003).expect("a valid range")
}

async fn slug_holder(pool: &PgPool, slug: &str) -> Option<String> {
    sqlx::query_scalar("SELECT project_id FROM project_slugs WHERE slug = $1")
        .bind(slug)
        .fetch_optional(pool)
        .await
        .expect("read project_slugs")
}

async fn reserved_ports(pool: &PgPool, id: ProjectId) -> Vec<i32> {
    sqlx::query_scalar("SELECT port FROM project_ports WHERE project_id = $1 ORDER BY port")
        .bind(id.to_string())
        .fetch_all(pool)
        .await
        .expect("read project_ports")
}

fn is_rejected_with(
    result: &Result<infrastructure::Executed, CommandError>,
    expected: &ProjectError,
) -> bool {
    matches!(result, Err(CommandError::Rejected(error)) if error == expected)
}

#[tokio::test]
async fn deleting_a_project_frees_its_name_for_a_new_project() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, PortRange::default());

    let (first, created) = create_project(&bus, "Alpha").await;
    created.expect("create Alpha");
    let (_, again) = create_project(&bus, "alpha").await;
    assert!(
        is_rejected_with(
            &again,
            &ProjectError::NameTaken {
                slug: "alpha".into()
            }
        ),
        "{again:?}"
    );

    run(&bus, first, ProjectCommand::DeleteProject)
        .await
        .expect("delete Alpha");
    assert_eq!(slug_holder(&pool, "alpha").await, None);
    assert!(reserved_ports(&pool, first).await.is_empty());

    let (second, recreated) = create_project(&bus, "Alpha").await;
    recreated.expect("create Alpha again after the delete");
    assert_eq!(slug_holder(&pool, "alpha").await, Some(second.to_string()));
}

#[tokio::test]
async fn a_create_on_an_existing_id_is_rejected_and_changes_nothing() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, PortRange::default());
    let (id, created) = create_project(&bus, "Original").await;
    created.expect("create Original");
    let ports = reserved_ports(&pool, id).await;

    // The bus does not load an aggregate for a create: the store's unique
    // sequence catches the clash, and the retry on fresh state rejects it.
    let again = run(
        &bus,
        id,
        ProjectCommand::CreateProject {
            project_id: id,
            name: ProjectName::parse("Impostor").unwrap(),
            path: ProjectPath::parse("/srv/impostor").unwrap(),
        },
    )
    .await;
    assert!(
        is_rejected_with(&again, &ProjectError::AlreadyExists),
        "{again:?}"
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(id.to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 1);
    assert_eq!(slug_holder(&pool, "impostor").await, None);
    assert_eq!(slug_holder(&pool, "original").await, Some(id.to_string()));
    assert_eq!(reserved_ports(&pool, id).await, ports);
}

#[tokio::test]
async fn the_only_port_block_is_refused_to_a_second_project_and_reused_after_a_delete() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = command_bus(&pool, one_block());

    let (first, created) = create_project(&bus, "First").await;
    created.expect("create First");
    assert_eq!(
        reserved_ports(&pool, first).await,
        vec![30000, 30001, 30002, 30003]
    );

    let (second, refused) = create_project(&bus, "Second").await;
    assert!(
        is_rejected_with(&refused, &ProjectError::PortsExhausted),
        "{refused:?}"
    );
    assert_eq!(slug_holder(&pool, "second").await, None);
    assert!(reserved_ports(&pool, second).await.is_empty());

    run(&bus, first, ProjectCommand::DeleteProject)
        .await
        .expect("delete First");
    let (third, created) = create_project(&bus, "Third").await;
    created.expect("create Third with the freed block");
    assert_eq!(
        reserved_ports(&pool, third).await,
        vec![30000, 30001, 30002, 30003]
    );
    assert!(reserved_ports(&pool, first).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_leave_exactly_one_project() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let bus = std::sync::Arc::new(command_bus(&pool, PortRange::default()));

    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move { create_project(&bus, "Race").await })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        let (id, result) = attempt.await.expect("create task");
        match result {
            Ok(_) => winners.push(id),
            Err(CommandError::Rejected(ProjectError::NameTaken { slug })) => {
                assert_eq!(slug, "race");
            }
            Err(other) => panic!("a losing create must be told the name is taken: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    assert_eq!(
        slug_holder(&pool, "race").await,
        Some(winners[0].to_string())
    );
}

/// Writes the `ProjectCreated` event of a project named "ghost" (holding the
/// one block of [`one_block`]) on `conn`, as the command bus would, without
/// committing. Returns the ghost's id.
async fn begin_ghost_creation(conn: &mut PgConnection) -> ProjectId {
    let id = ProjectId::new();
    let name = ProjectName::parse("ghost").expect("a valid name");
    let event = ProjectEvent::ProjectCreated {
        project_id: id,
        slug: Slug::from_name(&name).expect("a valid slug"),
        name,
        path: ProjectPath::parse("/srv/ghost").expect("a valid path"),
        ports: one_block().block(0).expect("the block"),
    };
    sqlx::query("BEGIN")
        .execute(&mut *conn)
        .await
        .expect("begin");
    sqlx::query(
        "INSERT INTO events \
             (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Project', $1, 1, 'ProjectCreated', '1.0', $2, '{}')",
    )
    .bind(id.to_string())
    .bind(serde_json::to_value(&event).expect("serialize the event"))
    .execute(&mut *conn)
    .await
    .expect("insert the ghost's event");
    // Inside the transaction the trigger has reserved the slug and ports;
    // otherwise this test would prove nothing about freeing them.
    let (slug_held, ports_held): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM project_slugs WHERE project_id = $1), \
                (SELECT count(*) FROM project_ports WHERE project_id = $1)",
    )
    .bind(id.to_string())
    .fetch_one(&mut *conn)
    .await
    .expect("read the reservation inside the transaction");
    assert_eq!((slug_held, ports_held), (1, 4));
    id
}

/// After the ghost's transaction ended without committing, its name and
/// ports are free: nothing is reserved and "Ghost" can be created with them.
async fn assert_ghost_left_nothing(pool: &PgPool, ghost: ProjectId) {
    assert_eq!(slug_holder(pool, "ghost").await, None);
    assert!(reserved_ports(pool, ghost).await.is_empty());
    let bus = command_bus(pool, one_block());
    let (id, created) = create_project(&bus, "Ghost").await;
    created.expect("create Ghost after the ghost's creation ended");
    assert_eq!(slug_holder(pool, "ghost").await, Some(id.to_string()));
    assert_eq!(
        reserved_ports(pool, id).await,
        vec![30000, 30001, 30002, 30003]
    );
}

#[tokio::test]
async fn a_rolled_back_creation_leaves_its_name_and_ports_free() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let mut conn = PgConnection::connect(db.url()).await.expect("connect");
    let ghost = begin_ghost_creation(&mut conn).await;
    sqlx::query("ROLLBACK")
        .execute(&mut conn)
        .await
        .expect("roll back");
    assert_ghost_left_nothing(&pool, ghost).await;
}

#[tokio::test]
async fn a_creation_cut_off_by_a_lost_connection_leaves_its_name_and_ports_free() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    let mut conn = PgConnection::connect(db.url()).await.expect("connect");
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .expect("backend pid");
    let ghost = begin_ghost_creation(&mut conn).await;
    // Like a crashed process: the socket closes, no ROLLBACK is sent.
    drop(conn);
    wait_until(
        "the server to end the orphaned backend",
        Duration::from_secs(10),
        || {
            let pool = pool.clone();
            async move {
                let alive: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                )
                .bind(backend)
                .fetch_one(&pool)
                .await
                .expect("read pg_stat_activity");
                (!alive).then_some(())
            }
        },
    )
    .await;
    assert_ghost_left_nothing(&pool, ghost).await;
}
