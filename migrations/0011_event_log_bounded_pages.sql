-- Filtered pages of the event log that stay bounded however long the log
-- grows: a page `since` a time and a page of one correlation id start their
-- walk in feed order where their first event can be, not at the start of
-- the log (or at a cursor) with every row in between filtered out.

-- The latest timestamp of this row and of every row before it in feed
-- order that was written in feed order, so it never decreases in feed
-- order. Timestamps alone are not monotonic in feed order (transactions
-- interleave their inserts, the clock is read at each insert), but every
-- row is at most its high-water mark: the first row whose mark reaches a
-- time is where the rows recorded at or after that time begin.
--
-- NULL for a row written after rows that follow it in feed order (a parked
-- event handled later, or a row written before this column existed): such
-- rows are few, have their own index below, and are searched apart
-- (projections/src/event_list.rs, projections/src/since.rs). Rows written
-- before this migration are NULL until `hub projections rebuild event_log`
-- (the projection's code version 2 writes the column; an empty log starts
-- at version 2).
ALTER TABLE event_log
    ADD COLUMN timestamp_high_water timestamptz;

CREATE INDEX event_log_high_water_idx ON event_log (timestamp_high_water, transaction_id, position);
CREATE INDEX event_log_late_idx ON event_log (transaction_id, position) WHERE timestamp_high_water IS NULL;

-- One correlation id's events in feed order: its page after a cursor reads
-- only its own entries, also when the cursor is past its last event.
-- Correlation and aggregate ids are only ever compared for equality, so
-- their indexes compare bytes (`text_pattern_ops`) instead of collating:
-- cheaper to build (a rebuild builds them over the whole log) and to keep.
DROP INDEX event_log_correlation_idx;
CREATE INDEX event_log_correlation_idx ON event_log (correlation_id text_pattern_ops, transaction_id, position);
DROP INDEX event_log_aggregate_idx;
CREATE INDEX event_log_aggregate_idx ON event_log (aggregate_id text_pattern_ops, sequence);

-- An empty log has no row written by an older version.
UPDATE read_model_versions
SET version = 2
WHERE read_model = 'event_log'
  AND NOT EXISTS (SELECT 1 FROM event_log);

-- A rebuild of event_log interrupted before this migration starts over:
-- its rows were written without the high-water mark. (`prepare_shadow`
-- finds no shadow table, and resets the rebuild's checkpoint and parked
-- events.)
DROP TABLE IF EXISTS event_log__rebuild;
