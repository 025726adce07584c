-- One exact subject's events in feed order: its page after a cursor reads
-- only its own entries, also when the cursor is past its last event (a
-- subject no longer published), where the walk of the feed-order index
-- would filter the whole rest of the log. Subject patterns (`*`, `>`) read
-- a prefix of it as before. Built once, at this migration (writes to
-- `event_log` wait for it; a rebuild copies the new shape).
CREATE INDEX event_log_subject_feed_order_idx
    ON event_log (subject text_pattern_ops, transaction_id, position);
DROP INDEX event_log_subject_idx;

-- A rebuild of event_log interrupted after it built its indexes has the
-- old shape on its shadow table: without it, the rebuild builds the new one
-- when it resumes.
DROP INDEX IF EXISTS event_log_subject_idx__rebuild;
