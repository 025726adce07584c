//! The replay of the log into the shadow table: batches read on one
//! connection while the previous one is written on another, each batch
//! committed with the rebuild's checkpoint.
//!
//! Two passes. The bulk pass runs while the shadow table has no secondary
//! index (for `event_log`, no index at all): `event_log`'s rows go in with
//! a binary `COPY` ([`EventLogCopy`]), other read models' through their
//! projection. Once the indexes are built, the events that arrived
//! meanwhile go through the projection, as the live runner writes them.

use std::ops::ControlFlow;
use std::time::Instant;

use infrastructure::feed::read_after as read_batch;
use infrastructure::feed::{
    advance_checkpoint, park_unreadable_in_replay, FeedConsumer, FeedPosition, HeldBack,
};
use sqlx::{Connection as _, PgConnection};

use super::{Progress, RebuildError, RebuildOptions, Rebuildable};
use crate::event_log::EventLogCopy;

/// Which pass a batch is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    /// Before the secondary indexes exist.
    Bulk,
    /// After they were built: the events that arrived during the bulk.
    AfterIndexes,
}

/// How the bulk pass writes a batch.
enum BulkWriter {
    /// Through the projection, as in the other pass.
    Projection,
    /// `event_log`'s binary `COPY`.
    EventLog(EventLogCopy),
}

/// A replay into the shadow table in progress.
pub(super) struct Replay {
    pub(super) consumer: Box<dyn FeedConsumer>,
    bulk: BulkWriter,
    /// Aggregates with an event that cannot be read back: their events are
    /// parked under the rebuild's key, and move to the live consumer's at
    /// the switch.
    pub(super) held: HeldBack,
    pub(super) checkpoint: FeedPosition,
    pub(super) progress: Progress,
    started: Instant,
}

impl Replay {
    /// A replay of `projection` into its shadow table from `checkpoint`.
    pub(super) async fn new(
        conn: &mut PgConnection,
        projection: &Rebuildable,
        held: HeldBack,
        checkpoint: FeedPosition,
        progress: Progress,
        started: Instant,
    ) -> Result<Self, sqlx::Error> {
        let shadow = projection.shadow_table();
        let bulk = match projection {
            Rebuildable::Projects => BulkWriter::Projection,
            Rebuildable::EventLog { hub_id } => {
                BulkWriter::EventLog(EventLogCopy::continuing(conn, hub_id.clone(), &shadow).await?)
            }
        };
        Ok(Self {
            consumer: projection.consumer(&shadow),
            bulk,
            held,
            checkpoint,
            progress,
            started,
        })
    }

    /// Replays batches until the head of the log, or until `on_batch` breaks.
    ///
    /// Batch `n + 1` is read on `reader` while batch `n` is written on
    /// `conn`. That read cannot see past the write's own transaction (the
    /// feed's fence), so an empty read is repeated once the write committed
    /// before the log counts as caught up.
    pub(super) async fn catch_up(
        &mut self,
        pass: Pass,
        conn: &mut PgConnection,
        reader: &mut PgConnection,
        projection: &Rebuildable,
        options: &RebuildOptions,
        on_batch: &mut impl FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, RebuildError> {
        let key = projection.rebuild_consumer();
        let mut next = read_batch(reader, self.checkpoint, options.batch_size).await?;
        loop {
            let events = std::mem::take(&mut next);
            let Some(last) = events.last().map(|e| e.feed_position()) else {
                return Ok(ControlFlow::Continue(()));
            };
            let count = events.len() as i64;
            let from = self.checkpoint;
            let consumer = self.consumer.as_ref();
            let copy = match (&self.bulk, pass) {
                (BulkWriter::EventLog(copy), Pass::Bulk) => Some(copy),
                _ => None,
            };
            let held = &mut self.held;
            let write = async {
                let mut tx = conn.begin().await?;
                let readable = park_unreadable_in_replay(&mut tx, &key, &events, held).await?;
                let mut high_water = None;
                match copy {
                    Some(copy) => high_water = copy.write(&mut tx, &readable).await?,
                    None => consumer
                        .handle(&mut tx, &readable)
                        .await
                        .map_err(|source| RebuildError::Consumer {
                            name: projection.name(),
                            source,
                        })?,
                }
                if !advance_checkpoint(&mut tx, &key, from, last, count).await? {
                    return Err(RebuildError::LostCheckpoint(key.clone()));
                }
                tx.commit().await?;
                Ok::<_, RebuildError>(high_water)
            };
            let (written, read) = tokio::join!(write, read_batch(reader, last, options.batch_size));
            let high_water = written?;
            if let BulkWriter::EventLog(copy) = &mut self.bulk {
                copy.committed(high_water);
            }
            next = read?;
            if next.is_empty() {
                next = read_batch(reader, last, options.batch_size).await?;
            }
            self.checkpoint = last;
            let progress = &mut self.progress;
            progress.this_run += count;
            progress.done += count;
            progress.total = progress.total.max(progress.done);
            progress.elapsed = self.started.elapsed();
            if on_batch(progress).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
}
