-- Snapshots (postgres-es' `snapshots` table): at most one row per aggregate.
--
-- postgres-es inserts a snapshot when the loaded context has none and
-- otherwise updates the row whose `current_snapshot` it loaded. When a
-- stored snapshot no longer deserializes (the aggregate's shape changed),
-- cqrs-es replays the history and the next snapshot is *inserted* with
-- `current_snapshot = 1` beside the old row: two rows, and a later update
-- `WHERE current_snapshot = 1` would touch both, which postgres-es reports
-- as a conflict only after its transaction committed. A new snapshot
-- therefore replaces every older row of its aggregate.
CREATE FUNCTION hub_replace_snapshot() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    DELETE FROM snapshots
    WHERE aggregate_type = NEW.aggregate_type
      AND aggregate_id = NEW.aggregate_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER snapshots_replace_older
    BEFORE INSERT
    ON snapshots
    FOR EACH ROW
EXECUTE FUNCTION hub_replace_snapshot();
