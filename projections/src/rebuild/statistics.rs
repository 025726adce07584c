//! Planner statistics for a rebuilt table.
//!
//! A table filled by a rebuild has no statistics until autovacuum gets to
//! it (up to a minute, longer on a busy server), and without them the
//! planner guesses: on a million events, filtered first pages of the event
//! log took 0.2-2.3 s instead of 10-15 ms. So the rebuild analyzes the new
//! table before the switch makes it live, and analyzes the live table again
//! when the switch's own catch-up added more rows than the statistics saw.

use sqlx::PgConnection;

/// Fraction of the analyzed rows the switch may add before the live table
/// is analyzed again: PostgreSQL's own default for autovacuum
/// (`autovacuum_analyze_scale_factor` 0.1), so the table is never staler
/// than autovacuum would leave it.
const STALE_FRACTION: f64 = 0.1;
/// Rows the switch may add before a re-analysis regardless of the fraction
/// (autovacuum's `autovacuum_analyze_threshold` is 50; an ANALYZE is cheap
/// next to the statements that wrote this many rows).
const STALE_ROWS: i64 = 1_000;

/// Runs `ANALYZE` on `table` (a trusted identifier).
pub(super) async fn analyze(conn: &mut PgConnection, table: &str) -> Result<(), sqlx::Error> {
    tracing::info!(%table, "analyzing");
    sqlx::query(&format!("ANALYZE {table}"))
        .execute(conn)
        .await
        .map(drop)
}

/// Whether `added` events written after the statistics were taken on
/// `analyzed` events leave them stale enough to analyze again.
pub(super) fn stale_after(analyzed: i64, added: i64) -> bool {
    added > STALE_ROWS && added as f64 > analyzed.max(0) as f64 * STALE_FRACTION
}

#[cfg(test)]
mod tests {
    use super::stale_after;

    #[test]
    fn a_large_catch_up_makes_the_statistics_stale_and_a_small_one_does_not() {
        assert!(!stale_after(1_000_000, 0));
        assert!(!stale_after(1_000_000, 50_000), "5% more rows");
        assert!(stale_after(1_000_000, 150_000), "15% more rows");
        assert!(!stale_after(0, 900), "a few rows on an empty table");
        assert!(stale_after(0, 5_000));
        assert!(!stale_after(100_000, 9_000));
        assert!(stale_after(100_000, 11_000));
    }
}
