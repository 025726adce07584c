-- The event store: postgres-es' own tables, plus the columns the hub needs to
-- read the log as one ordered, gap-safe feed.

-- One row per domain event. postgres-es names its columns in every INSERT and
-- SELECT, so the extra columns below (all with defaults) are invisible to it.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    -- correlation id, causation id, origin (hub id, service, user) of the command.
    metadata       json                         NOT NULL,
    -- Stable public identity of the event (NATS Nats-Msg-Id, GraphQL Event.id).
    event_id       uuid        NOT NULL DEFAULT gen_random_uuid(),
    -- Global insert order. Assigned at INSERT, not at commit: never read the log
    -- by position alone (see transaction_id).
    position       bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
    -- The writing transaction. Readers only read rows of transactions older than
    -- the oldest transaction still running (pg_snapshot_xmin), ordered by
    -- (transaction_id, position), so a late commit is never skipped.
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- When the row was written (wall clock of the insert, not the transaction start).
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_event_id_key ON events (event_id);
CREATE UNIQUE INDEX events_position_key ON events (position);
-- The feed's read order.
CREATE INDEX events_feed_order_idx ON events (transaction_id, position);

-- Required by postgres-es; the hub does not snapshot, but the crate expects it.
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- One row per feed consumer (read model, relay, process manager): the last event
-- it has fully handled, in feed order. A database consumer updates its row in
-- the same transaction as its own changes.
CREATE TABLE feed_checkpoints
(
    consumer       text PRIMARY KEY,
    transaction_id xid8        NOT NULL DEFAULT '0'::xid8,
    position       bigint      NOT NULL DEFAULT 0,
    -- Events handled so far (for progress and lag reporting).
    handled        bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
