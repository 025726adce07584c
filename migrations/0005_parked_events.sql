-- Poison events, and the code version each read model was built with.

-- Events a feed consumer with the "park" policy (the read models) could not
-- handle after its retries (infrastructure::feed, `PoisonPolicy::Park`).
--
-- The runner writes a row here in the same transaction that moves the
-- consumer's checkpoint past the event, so an event is either handled, or
-- parked, or still ahead of the checkpoint: never lost. `hub projections retry
-- <name>` replays a consumer's rows in feed order through the consumer and
-- deletes each one in the transaction that applied it.
--
-- To keep each aggregate's events in order, once an event of an aggregate is
-- parked, the consumer's later events of that aggregate are parked too
-- (`held_behind` set, never tried) until a retry replays them in order. The
-- runner reads the parked aggregates at the start of each batch.
--
-- Only consumer failures are parked: a database or broker outage is retried
-- until it ends. Consumers with the "halt" policy (the NATS relay, the
-- orchestration process manager) never write here: they stop on the event.
CREATE TABLE parked_events
(
    -- The feed consumer (its feed_checkpoints key).
    consumer       text        NOT NULL,
    event_id       uuid        NOT NULL,
    -- The event's place in the feed (events.transaction_id, events.position):
    -- retries replay in this order.
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    event_type     text        NOT NULL,
    -- NULL when the event failed itself; otherwise the first parked event of
    -- the same aggregate, which this one waits behind (it was never tried).
    held_behind    uuid,
    -- What the consumer said on the last attempt (NULL for a held event).
    error          text,
    -- Attempts so far: the batch attempts before it was parked, the attempt
    -- on its own, and one per retry (0 for a held event).
    attempts       integer     NOT NULL DEFAULT 0,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    last_retry_at  timestamptz,
    PRIMARY KEY (consumer, event_id),
    CHECK ((error IS NULL) <> (held_behind IS NULL))
);

-- Retries walk a consumer's rows in feed order.
CREATE INDEX parked_events_feed_order_idx ON parked_events (consumer, transaction_id, position);
-- Each batch asks which of its aggregates are held back.
CREATE INDEX parked_events_aggregate_idx ON parked_events (consumer, aggregate_type, aggregate_id);

-- The code version (projections::Rebuildable::code_version) each rebuildable
-- read model's live table was built with. The rebuild's switch transaction
-- writes it together with the table swap, so it always describes the table
-- that is live. A read model whose code version is higher than the one here
-- is outdated: its projection changed and the table should be rebuilt.
CREATE TABLE read_model_versions
(
    -- The read model (its consumer name).
    read_model text PRIMARY KEY,
    -- Code versions start at 1; 0 is free for "older than any version".
    version    integer     NOT NULL CHECK (version >= 0),
    -- When a rebuild last switched this read model (the migration's time for
    -- tables that have not been rebuilt since).
    built_at   timestamptz NOT NULL DEFAULT now()
);

-- Tables created before versions were recorded were built by version 1.
INSERT INTO read_model_versions (read_model, version)
VALUES ('projects', 1),
       ('event_log', 1);
