-- No query reads `event_log` by its timestamps alone any more: `since`
-- starts at the high-water mark's index (0011), `until` and `since` beside
-- other filters read their rows in feed order within a bounded scan, and
-- the rows without a mark are walked in feed order by their own index
-- (pages and the start of a replay `since` a time alike: PostgreSQL chose
-- that walk over this index as well). The plain timestamp index only cost
-- every append one more index entry and every rebuild one more sort.
DROP INDEX IF EXISTS event_log_timestamp_idx;

-- A rebuild of event_log interrupted after it built its indexes: without
-- this one, it builds exactly the live table's indexes when it resumes.
DROP INDEX IF EXISTS event_log_timestamp_idx__rebuild;
