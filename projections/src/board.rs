//! The board: every project that is not deleted, and the feed position the
//! rows are at, read together ([`ReadModels::board`]), so that a reader that
//! goes on from that position after the rows misses no change and sees none
//! twice.

use infrastructure::feed::FeedPosition;

use crate::projects::{ProjectRow, ProjectsProjection};
use crate::queries::{QueryError, ReadModels};

/// The rows of the board, oldest first.
const ROWS: &str = "SELECT * FROM projects WHERE status <> 'DELETED' ORDER BY created_at, id";

/// The `projects` projection's checkpoint: the last event its rows hold.
const CHECKPOINT: &str = "\
SELECT transaction_id::text::bigint, position FROM feed_checkpoints WHERE consumer = $1";

/// Every project that is not deleted, with the feed position the rows are at.
#[derive(Clone, Debug)]
pub struct Board {
    /// The rows, in creation order.
    pub rows: Vec<ProjectRow>,
    /// The last event the rows hold: the rows are every project's state
    /// after it and before the next.
    pub at: FeedPosition,
}

impl ReadModels {
    /// The board as of the `projects` read model's checkpoint: its rows and
    /// its checkpoint in one snapshot (one REPEATABLE READ transaction; the
    /// projection writes both in one transaction, a rebuild switches both
    /// in one).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn board(&self) -> Result<Board, QueryError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let checkpoint: Option<(i64, i64)> = sqlx::query_as(CHECKPOINT)
            .bind(ProjectsProjection::NAME)
            .fetch_optional(&mut *tx)
            .await?;
        let rows: Vec<ProjectRow> = sqlx::query_as(ROWS).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let at = checkpoint.map_or(FeedPosition::START, |(transaction_id, position)| {
            FeedPosition {
                transaction_id,
                position,
            }
        });
        Ok(Board { rows, at })
    }
}
