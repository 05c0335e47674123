-- The per-project counts (0004, 0011) are kept by statement-level triggers instead of
-- row-level ones. One statement of the writer inserts or updates a whole batch, and a
-- row-level trigger ran up to two PL/pgSQL statements per operation, each making a new
-- version of the same few count rows (64 versions of one row for a batch of 64 creates
-- in one project). Now each statement adds its rows up per (project, kind, type,
-- status) from its transition tables and touches each count row once. Only writes
-- under the feed head change operations (the writer, lease expiry, retention, `opsd
-- copy`), so these rows are still never a point of contention. (PostgreSQL allows a
-- transition table only on a trigger of one event, hence three.)
DROP TRIGGER operation_counts_insert ON operations;
DROP TRIGGER operation_counts_status ON operations;
DROP FUNCTION operation_counts_track();

CREATE FUNCTION operation_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO operation_counts AS c (project, kind, type, status, n)
        SELECT project, kind, type, status, COUNT(*) FROM new_rows
        GROUP BY project, kind, type, status
        ON CONFLICT (project, kind, type, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END;
$$;

CREATE FUNCTION operation_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE operation_counts c SET n = c.n - gone.n
        FROM (SELECT project, kind, type, status, COUNT(*) AS n FROM old_rows
              GROUP BY project, kind, type, status) gone
        WHERE c.project = gone.project AND c.kind = gone.kind AND c.type = gone.type
          AND c.status = gone.status;
    RETURN NULL;
END;
$$;

-- An update moves an operation from one count to another only when its status changed
-- (kind, type and project never change; `seq` identifies the row in both tables).
CREATE FUNCTION operation_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE operation_counts c SET n = c.n - moved.n
        FROM (SELECT o.project, o.kind, o.type, o.status, COUNT(*) AS n
              FROM old_rows o JOIN new_rows r ON r.seq = o.seq WHERE r.status <> o.status
              GROUP BY o.project, o.kind, o.type, o.status) moved
        WHERE c.project = moved.project AND c.kind = moved.kind AND c.type = moved.type
          AND c.status = moved.status;
    INSERT INTO operation_counts AS c (project, kind, type, status, n)
        SELECT r.project, r.kind, r.type, r.status, COUNT(*)
        FROM old_rows o JOIN new_rows r ON r.seq = o.seq WHERE r.status <> o.status
        GROUP BY r.project, r.kind, r.type, r.status
        ON CONFLICT (project, kind, type, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END;
$$;

CREATE TRIGGER operation_counts_inserted AFTER INSERT ON operations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION operation_counts_add();
CREATE TRIGGER operation_counts_deleted AFTER DELETE ON operations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION operation_counts_remove();
CREATE TRIGGER operation_counts_moved AFTER UPDATE ON operations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION operation_counts_move();
