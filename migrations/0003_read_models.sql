-- Read models. Each is written only by its projection (crate `projections`),
-- fed from the event store with its own row in feed_checkpoints, and can be
-- rebuilt from the store at any time.

-- One row per project, including deleted ones (status 'DELETED').
CREATE TABLE projects
(
    id              uuid PRIMARY KEY,
    name            text        NOT NULL,
    slug            text        NOT NULL,
    path            text        NOT NULL,
    backend_port    integer     NOT NULL,
    frontend_port   integer     NOT NULL,
    postgres_port   integer     NOT NULL,
    redis_port      integer     NOT NULL,
    -- STOPPED, STARTING, RUNNING, STOPPING, ERROR or DELETED.
    status          text        NOT NULL,
    -- The aggregate's sequence number of the last event applied.
    version         bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_started_at timestamptz,
    last_stopped_at timestamptz,
    -- Reason of the last failed start or stop (used by orchestration).
    last_error      text
);

-- Stable list order and its cursor.
CREATE INDEX projects_created_idx ON projects (created_at, id);
CREATE INDEX projects_slug_idx ON projects (slug);
CREATE INDEX projects_status_idx ON projects (status);

-- Counts per status, derived from `projects` so it can never disagree with it.
CREATE VIEW project_stats AS
SELECT count(*) FILTER (WHERE status <> 'DELETED')  AS total,
       count(*) FILTER (WHERE status = 'RUNNING')   AS running,
       count(*) FILTER (WHERE status = 'STOPPED')   AS stopped,
       count(*) FILTER (WHERE status = 'STARTING')  AS starting,
       count(*) FILTER (WHERE status = 'STOPPING')  AS stopping,
       count(*) FILTER (WHERE status = 'ERROR')     AS errors,
       count(*) FILTER (WHERE status = 'DELETED')   AS deleted
FROM projects;

-- The queryable event history, in the shape of the original event-system design
-- plus the store's coordinates. Rows are appended in feed order.
CREATE TABLE event_log
(
    id             uuid PRIMARY KEY,
    -- hub.<hub_id>.<domain>.<action>
    subject        text        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    position       bigint      NOT NULL,
    -- The writing transaction (events.transaction_id as a number). Feed order
    -- is (transaction_id, position); cursors encode both.
    transaction_id bigint      NOT NULL,
    correlation_id text,
    causation_id   text,
    -- {"hub_id": ..., "service": ..., "user": ...}
    origin         jsonb       NOT NULL,
    -- The event's own fields (without the enum tag the store keeps).
    payload        jsonb       NOT NULL,
    "timestamp"    timestamptz NOT NULL
);

CREATE INDEX event_log_feed_order_idx ON event_log (transaction_id, position);
CREATE INDEX event_log_subject_idx ON event_log (subject text_pattern_ops);
CREATE INDEX event_log_correlation_idx ON event_log (correlation_id);
CREATE INDEX event_log_timestamp_idx ON event_log ("timestamp");
CREATE INDEX event_log_aggregate_idx ON event_log (aggregate_id, sequence);
