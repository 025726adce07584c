//! A rebuilt read model goes live with planner statistics: without them a
//! filtered page of a large event log is planned blind until autovacuum
//! analyzes the new table.

use hub_tests::feed::migrated_pool;
use hub_tests::rebuild::{bus, generate_history, rebuild_fully, HUB_ID};
use hub_tests::TestDb;
use projections::{RebuildOutcome, Rebuildable};
use sqlx::PgPool;

/// When `table` was last analyzed by an `ANALYZE` statement (autovacuum's
/// own analyses are counted apart, in `last_autoanalyze`), and how many of
/// its columns have statistics.
async fn statistics(pool: &PgPool, table: &str) -> (bool, i64) {
    let analyzed: bool = sqlx::query_scalar(
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relid = $1::regclass",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .expect("read the table's activity statistics");
    let columns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = $1",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .expect("read the planner statistics");
    (analyzed, columns)
}

#[tokio::test]
async fn a_rebuilt_table_has_planner_statistics_as_soon_as_it_is_live() {
    let db = TestDb::create().await;
    let pool = migrated_pool(&db).await;
    generate_history(&bus(&pool), 30).await;
    for projection in Rebuildable::all(HUB_ID) {
        let table = projection.table();
        assert_eq!(
            statistics(&pool, table).await,
            (false, 0),
            "{table} starts without statistics"
        );
        let outcome = rebuild_fully(&pool, &projection).await;
        assert!(matches!(outcome, RebuildOutcome::Switched(_)));
        let (analyzed, columns) = statistics(&pool, table).await;
        assert!(analyzed, "{table} was analyzed by the rebuild");
        assert!(columns > 0, "{table} has column statistics");
    }
}
