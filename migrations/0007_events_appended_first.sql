-- A transaction that appends events appends them before it writes anything
-- else.
--
-- The event feed's fence (infrastructure::feed, docs/EVENT_SYSTEM.md) waits
-- only for transactions that can still append events: those holding the
-- lock a write takes on `events`. It relies on every appending transaction
-- taking that lock before it gets a transaction id, which holds when its
-- first write is an insert into `events` (PostgreSQL locks the table when
-- the statement starts and assigns the id at the first row written).
-- postgres-es writes every commit that way. A transaction that got its id
-- by writing elsewhere first, and then appends events, could be passed by
-- the fence and its events skipped: this trigger refuses such an insert.
--
-- `hub.appends_events` marks, for the rest of the transaction, that it has
-- appended events (and so holds the lock): later inserts pass. A savepoint
-- rolled back undoes the mark together with the lock it stood for.
CREATE FUNCTION hub_events_appended_first() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF current_setting('hub.appends_events', true) IS DISTINCT FROM 'on' THEN
        IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
            RAISE EXCEPTION 'a transaction that appends events must append them before it writes anything else'
                USING HINT = 'the event feed waits only for transactions that locked the events table before they got their transaction id';
        END IF;
        PERFORM set_config('hub.appends_events', 'on', true);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_appended_first
    BEFORE INSERT ON events
    FOR EACH STATEMENT
EXECUTE FUNCTION hub_events_appended_first();
