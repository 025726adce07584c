//! A batch in one statement: the consumer's write and the checkpoint's
//! compare-and-set as one `WITH` query (see
//! [`super::FeedConsumer::handle_in_one_statement`]).

use sqlx::postgres::PgArguments;
use sqlx::{Arguments as _, PgConnection};

use super::consumer::ConsumerError;
use super::event::FeedPosition;

/// A `WITH` item, `moved`, that moves a consumer's checkpoint (the
/// compare-and-set of [`super::advance_checkpoint`]) and returns one row
/// when it did, none when someone else had moved it. Its six parameters are
/// `$first` to `$first + 5`, bound by [`CheckpointMove::execute`].
///
/// A consumer's statement writes only `WHERE EXISTS (SELECT 1 FROM moved)`
/// and ends with `SELECT count(*) FROM moved`; PostgreSQL runs every
/// data-modifying `WITH` item exactly once, whether the final query reads it
/// or not.
pub fn checkpoint_cte(first: usize) -> String {
    let p = |i: usize| first + i;
    format!(
        "moved AS (UPDATE feed_checkpoints \
         SET transaction_id = ${}::text::xid8, position = ${}, handled = handled + ${}, updated_at = now() \
         WHERE consumer = ${} AND transaction_id = ${}::text::xid8 AND position = ${} \
         RETURNING 1)",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    )
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
    ) -> Result<bool, ConsumerError> {
        args.add(self.to.transaction_id.to_string())?;
        args.add(self.to.position)?;
        args.add(self.count)?;
        args.add(self.consumer.to_owned())?;
        args.add(self.from.transaction_id.to_string())?;
        args.add(self.from.position)?;
        let moved: i64 = sqlx::query_scalar_with(sql, args).fetch_one(conn).await?;
        Ok(moved == 1)
    }
}
