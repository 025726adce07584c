-- A project's status is one of the codes of the domain's ProjectStatus
-- (`ProjectStatus::as_str`), and the read model refuses any other: the hub
-- reads the column back as that type, so an unknown value would be a
-- decode error, and it is stopped at the write instead. The list must equal
-- `ProjectStatus::ALL`; the read-model tests write and read every status.
--
-- `projects` is replaced by its shadow table when it is rebuilt; the shadow
-- is created `LIKE projects INCLUDING ALL`, which copies this constraint
-- with its name. A shadow table left by an interrupted rebuild predates it,
-- so it gets the constraint too.
ALTER TABLE projects
    ADD CONSTRAINT projects_status_known
        CHECK (status IN ('STOPPED', 'STARTING', 'RUNNING', 'STOPPING', 'ERROR', 'DELETED'));

DO
$$
    BEGIN
        IF to_regclass('projects__rebuild') IS NOT NULL THEN
            ALTER TABLE projects__rebuild
                ADD CONSTRAINT projects_status_known
                    CHECK (status IN ('STOPPED', 'STARTING', 'RUNNING', 'STOPPING', 'ERROR', 'DELETED'));
        END IF;
    END
$$;
