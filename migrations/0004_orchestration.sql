-- Start, stop and restart requests the orchestration process manager works
-- on (infrastructure::orchestration).
--
-- A row is inserted by the `project_orchestrator` feed consumer for every
-- ProjectStartRequested, ProjectStopRequested and ProjectRestartRequested
-- event, in the same transaction as the consumer's checkpoint: once the
-- checkpoint has moved past a request, the request is here, so a hub that
-- dies right after reading it still finds it on restart.
--
-- Before the orchestrator is called, the row is claimed (attempt_started_at
-- set) in a transaction of its own that commits first. A claimed row that is
-- not finished when a process manager (re)activates was interrupted (the hub
-- died or lost the database mid-run): its command may have partly run, so it
-- is never run again; the request fails with "interrupted" instead, and the
-- user decides whether to start again.
--
-- The event store stays the source of truth: a request is only worked on
-- while the aggregate still has it pending, so a row left unfinished after
-- its completion event committed is simply closed.

CREATE TABLE orchestration_requests
(
    -- The project (aggregate id) and the sequence of its request event: the
    -- number the completing command names.
    project_id         uuid        NOT NULL,
    request_sequence   bigint      NOT NULL,
    -- START, STOP or RESTART.
    kind               text        NOT NULL CHECK (kind IN ('START', 'STOP', 'RESTART')),
    -- The request event: the completion's causation id.
    event_id           uuid        NOT NULL,
    -- The request's correlation id, carried onto the completion's events.
    correlation_id     text,
    -- Who asked (the request event's origin user).
    requested_by       text,
    enqueued_at        timestamptz NOT NULL DEFAULT now(),
    -- Set, and committed, right before the orchestrator is called.
    attempt_started_at timestamptz,
    -- The hub (HUB_ID) whose process manager made the attempt.
    attempt_hub_id     text,
    finished_at        timestamptz,
    -- COMPLETED (the completion recorded success), FAILED (recorded a
    -- failure), INTERRUPTED (failed as interrupted by a restart) or SKIPPED
    -- (no longer pending when looked at: completed elsewhere).
    outcome            text CHECK (outcome IN ('COMPLETED', 'FAILED', 'INTERRUPTED', 'SKIPPED')),
    -- The failure reason recorded, if any.
    reason             text,
    PRIMARY KEY (project_id, request_sequence)
);

-- What a (re)activated process manager resumes.
CREATE INDEX orchestration_requests_unfinished_idx
    ON orchestration_requests (enqueued_at)
    WHERE finished_at IS NULL;
