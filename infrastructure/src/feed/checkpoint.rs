//! A consumer's checkpoint row in `feed_checkpoints`: where it is in the
//! feed and how many events it has handled. Read once when a runner becomes
//! active ([`load_checkpoint`]), then moved only by a compare-and-set: as a
//! statement of its own ([`advance_checkpoint`]) or as a `WITH` item in a
//! consumer's statement, whose write then commits with it (see
//! [`super::FeedConsumer::handle_in_one_statement`]).

use std::sync::LazyLock;

use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments as _, PgConnection};

use super::event::FeedPosition;

/// The compare-and-set: moves a consumer's checkpoint, and its handled
/// count, only if the checkpoint is where the caller believed (not moved by
/// another runner or a rebuild). Its six parameters are `$first` to
/// `$first + 5`, in the order [`CheckpointMove`] adds them.
fn checkpoint_update(first: usize) -> String {
    let p = |i: usize| first + i;
    format!(
        "UPDATE feed_checkpoints \
         SET transaction_id = ${}::text::xid8, position = ${}, handled = handled + ${}, updated_at = now() \
         WHERE consumer = ${} AND transaction_id = ${}::text::xid8 AND position = ${}",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    )
}

/// A `WITH` item, `moved`, that moves a consumer's checkpoint (the
/// compare-and-set of [`advance_checkpoint`]) and returns one row when it
/// did, none when someone else had moved it. Its six parameters are
/// `$first` to `$first + 5`, bound by [`CheckpointMove::execute`].
///
/// A consumer's statement writes only `WHERE EXISTS (SELECT 1 FROM moved)`
/// and ends with `SELECT count(*) FROM moved`; PostgreSQL runs every
/// data-modifying `WITH` item exactly once, whether the final query reads it
/// or not.
pub fn checkpoint_cte(first: usize) -> String {
    format!("moved AS ({} RETURNING 1)", checkpoint_update(first))
}

/// The checkpoint move of one batch: from where to where, and how many
/// events it handles.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointMove<'a> {
    consumer: &'a str,
    from: FeedPosition,
    to: FeedPosition,
    count: i64,
}

impl<'a> CheckpointMove<'a> {
    /// Moves `consumer`'s checkpoint from `from` to `to`, adding `count`
    /// handled events.
    pub fn new(consumer: &'a str, from: FeedPosition, to: FeedPosition, count: i64) -> Self {
        Self {
            consumer,
            from,
            to,
            count,
        }
    }

    /// Runs `sql`, a consumer's statement built with [`checkpoint_cte`],
    /// with the consumer's parameters `args` followed by the checkpoint's
    /// six. Returns whether the checkpoint moved (and with it, whether the
    /// consumer's rows were written).
    ///
    /// # Errors
    /// When the statement fails; nothing was written.
    pub async fn execute(
        &self,
        conn: &mut PgConnection,
        sql: &str,
        mut args: PgArguments,
    ) -> Result<bool, sqlx::Error> {
        self.add_to(&mut args)?;
        let moved: i64 = sqlx::query_scalar_with(sql, args).fetch_one(conn).await?;
        Ok(moved == 1)
    }

    /// Adds the six parameters of the compare-and-set after those in `args`.
    fn add_to(&self, args: &mut PgArguments) -> Result<(), sqlx::Error> {
        let add = |result: Result<(), BoxDynError>| result.map_err(sqlx::Error::Encode);
        add(args.add(self.to.transaction_id.to_string()))?;
        add(args.add(self.to.position))?;
        add(args.add(self.count))?;
        add(args.add(self.consumer.to_owned()))?;
        add(args.add(self.from.transaction_id.to_string()))?;
        add(args.add(self.from.position))
    }
}

/// Moves `consumer`'s checkpoint from `from` to `to` and adds `count` to
/// its handled events, on `conn` (inside the caller's transaction, if any).
/// A compare-and-set: returns false, changing nothing, when the checkpoint
/// is no longer at `from` (another runner or a rebuild moved it).
///
/// # Errors
/// When the update fails.
pub async fn advance_checkpoint(
    conn: &mut PgConnection,
    consumer: &str,
    from: FeedPosition,
    to: FeedPosition,
    count: i64,
) -> Result<bool, sqlx::Error> {
    static ADVANCE: LazyLock<String> = LazyLock::new(|| checkpoint_update(1));
    let mut args = PgArguments::default();
    CheckpointMove::new(consumer, from, to, count).add_to(&mut args)?;
    let moved = sqlx::query_with(&ADVANCE, args).execute(conn).await?;
    Ok(moved.rows_affected() == 1)
}

/// Reads `consumer`'s checkpoint and handled count, creating its row (at
/// the start of the feed) when it has none.
pub(super) async fn load_checkpoint(
    conn: &mut PgConnection,
    consumer: &str,
) -> Result<(FeedPosition, i64), sqlx::Error> {
    sqlx::query(
        "INSERT INTO feed_checkpoints (consumer) VALUES ($1) ON CONFLICT (consumer) DO NOTHING",
    )
    .bind(consumer)
    .execute(&mut *conn)
    .await?;
    let (transaction_id, position, handled): (i64, i64, i64) = sqlx::query_as(
        "SELECT transaction_id::text::bigint, position, handled \
         FROM feed_checkpoints WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_one(conn)
    .await?;
    Ok((
        FeedPosition {
            transaction_id,
            position,
        },
        handled,
    ))
}
