-- Group commit: the commits of concurrent commands (and published
-- integration events) appended in one transaction, one round trip, one WAL
-- flush, while each keeps its own outcome.
--
-- `batch` is a JSON array of commits, each
--   {"events": [{"aggregate_type", "aggregate_id", "sequence", "event_type",
--                "event_version", "payload", "metadata"}, ...],
--    "snapshot": null | {"aggregate_type", "aggregate_id", "last_sequence",
--                        "current_snapshot", "payload"}}
-- with the rows postgres-es would write for it. Each commit runs in its own
-- subtransaction (a BEGIN ... EXCEPTION block): a unique violation (another
-- event took its sequence number, or its slug or ports; see 0002) or a
-- snapshot that moved on undoes that commit alone and reports it as not
-- appended, and the others go on. The function answers one row per commit,
-- in the batch's order, with the ids and positions of the events it
-- appended and the transaction's id: together, each event's place in the
-- feed's order.
--
-- Any other error aborts the whole statement, so nothing of the batch is
-- stored; the caller then runs each commit on its own to give each its own
-- outcome. Nothing is acknowledged before the transaction has committed.
--
-- Every event of the batch belongs to this one top-level transaction
-- (`pg_current_xact_id()` is the top-level id inside a subtransaction), so
-- the feed sees the batch commit at once. The table lock the feed's fence
-- waits on (see 0007) is taken first, at the top level: taken inside the
-- first commit's subtransaction, it would be released if that commit were
-- undone, while the transaction kept the id it got there.
CREATE FUNCTION hub_append_batch(batch jsonb)
    RETURNS TABLE
            (
                commit_ordinal        integer,
                commit_appended       boolean,
                commit_event_ids      uuid[],
                commit_positions      bigint[],
                commit_transaction_id bigint,
                commit_recorded_at    timestamptz
            )
    LANGUAGE plpgsql AS
$$
DECLARE
    one      jsonb;
    ordinal  bigint;
    snapshot jsonb;
    updated  bigint;
BEGIN
    LOCK TABLE events IN ROW EXCLUSIVE MODE;
    PERFORM set_config('hub.appends_events', 'on', true);
    FOR one, ordinal IN SELECT c.value, c.ord FROM jsonb_array_elements(batch) WITH ORDINALITY AS c(value, ord)
        LOOP
            commit_ordinal := ordinal;
            BEGIN
                WITH inserted AS (
                    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                        event_version, payload, metadata)
                        SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type,
                               e.event_version, e.payload::json, e.metadata::json
                        FROM jsonb_to_recordset(one -> 'events') AS e(aggregate_type text,
                                                                       aggregate_id text,
                                                                       sequence bigint,
                                                                       event_type text,
                                                                       event_version text,
                                                                       payload jsonb,
                                                                       metadata jsonb)
                        ORDER BY e.sequence
                        RETURNING events.event_id, events.position, events.recorded_at)
                SELECT array_agg(inserted.event_id ORDER BY inserted.position),
                       array_agg(inserted.position ORDER BY inserted.position),
                       min(inserted.recorded_at)
                INTO commit_event_ids, commit_positions, commit_recorded_at
                FROM inserted;
                commit_transaction_id := pg_current_xact_id()::text::bigint;

                snapshot := one -> 'snapshot';
                IF snapshot IS NOT NULL AND jsonb_typeof(snapshot) = 'object' THEN
                    IF (snapshot ->> 'current_snapshot')::bigint = 1 THEN
                        INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence,
                                               current_snapshot, payload)
                        VALUES (snapshot ->> 'aggregate_type', snapshot ->> 'aggregate_id',
                                (snapshot ->> 'last_sequence')::bigint,
                                1, (snapshot -> 'payload')::json);
                    ELSE
                        -- The snapshot this commit was decided on must still
                        -- be the stored one, or another commit went first.
                        UPDATE snapshots
                        SET last_sequence    = (snapshot ->> 'last_sequence')::bigint,
                            current_snapshot = (snapshot ->> 'current_snapshot')::bigint,
                            payload          = (snapshot -> 'payload')::json
                        WHERE aggregate_type = snapshot ->> 'aggregate_type'
                          AND aggregate_id = snapshot ->> 'aggregate_id'
                          AND current_snapshot = (snapshot ->> 'current_snapshot')::bigint - 1;
                        GET DIAGNOSTICS updated = ROW_COUNT;
                        IF updated <> 1 THEN
                            RAISE unique_violation USING MESSAGE = 'the snapshot moved on';
                        END IF;
                    END IF;
                END IF;
                commit_appended := true;
            EXCEPTION
                WHEN unique_violation THEN
                    commit_appended := false;
                    commit_event_ids := NULL;
                    commit_positions := NULL;
                    commit_transaction_id := NULL;
                    commit_recorded_at := NULL;
            END;
            RETURN NEXT;
        END LOOP;
END;
$$;
