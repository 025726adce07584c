-- Snapshots that may hold the wrong state are removed.
--
-- Until this version, a commit of two events whose first event reached a
-- multiple of 50 (a restart's stop completing at version 49: `ProjectStopped`
-- at 50, the start request at 51) was snapshotted with the state after its
-- first event but recorded as of its last one, so the next load skipped the
-- second event (the project lost its pending start request). The hub now
-- snapshots the state after every event of the commit. Such a snapshot is
-- the only kind whose `last_sequence` is not a multiple of 50.
--
-- Snapshots are a cache of the history: without one, the next load replays
-- the project's events, and the next snapshot is taken when a commit
-- reaches the next multiple of 50.
DELETE FROM snapshots
WHERE aggregate_type = 'Project'
  AND last_sequence % 50 <> 0;
