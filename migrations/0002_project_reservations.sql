-- Names (slugs) and ports held by live projects.
--
-- These rows are written by a trigger on `events`, in the same transaction that
-- inserts the event: a slug or port is reserved exactly when the event that
-- claims it commits, and freed exactly when the event that releases it
-- commits. There is no window in which a crash can leave a reservation behind
-- (nothing is reserved before the commit) and no sweeper is needed.
--
-- Two concurrent creates of one name both pass the command's read-only check;
-- the second insert then blocks on the primary key below until the first
-- commits and fails with a unique violation (SQLSTATE 23505). postgres-es
-- reports every unique violation as an aggregate conflict; the command bus
-- then looks the slug up here and answers "name taken" (or retries with other
-- ports when only the ports collided).
--
-- The trigger reads the JSON written by the domain crate's `ProjectEvent`
-- (externally tagged, e.g. {"ProjectCreated": {"slug": ..., "ports": {...}}}).
-- A change to those event shapes must change this function too; the
-- integration tests cover both paths.

CREATE TABLE project_slugs
(
    slug       text PRIMARY KEY,
    -- Aggregate id of the live project holding the slug.
    project_id text NOT NULL UNIQUE
);

CREATE TABLE project_ports
(
    port       integer PRIMARY KEY,
    project_id text NOT NULL
);

CREATE INDEX project_ports_project_id_idx ON project_ports (project_id);

CREATE FUNCTION hub_reserve_project_resources() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    body json;
BEGIN
    CASE NEW.event_type
        WHEN 'ProjectCreated' THEN
            body := NEW.payload -> 'ProjectCreated';
            INSERT INTO project_slugs (slug, project_id)
            VALUES (body ->> 'slug', NEW.aggregate_id);
            INSERT INTO project_ports (port, project_id)
            SELECT ports.port::integer, NEW.aggregate_id
            FROM json_each_text(body -> 'ports') AS ports(kind, port);
        WHEN 'ProjectRenamed' THEN
            body := NEW.payload -> 'ProjectRenamed';
            UPDATE project_slugs
            SET slug = body ->> 'slug'
            WHERE project_id = NEW.aggregate_id
              AND slug <> body ->> 'slug';
        WHEN 'ProjectDeleted' THEN
            DELETE FROM project_slugs WHERE project_id = NEW.aggregate_id;
            DELETE FROM project_ports WHERE project_id = NEW.aggregate_id;
        ELSE
            NULL;
        END CASE;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_reserve_project_resources
    AFTER INSERT
    ON events
    FOR EACH ROW
    WHEN (NEW.aggregate_type = 'Project')
EXECUTE FUNCTION hub_reserve_project_resources();
