-- Per-project counts by kind, type and status, kept by triggers in the same transaction
-- as every insert, status change and delete, so a list's total_count over these filters
-- sums a handful of rows. These rows are not an extra point of contention: every write
-- transaction already holds the feed_head lock (0002) while it runs.
CREATE TABLE operation_counts (
    project_id  TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    type        TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (project_id, kind, type, status)
);

INSERT INTO operation_counts (project_id, kind, type, status, n)
    SELECT project_id, kind, type, status, COUNT(*) FROM operations
    GROUP BY project_id, kind, type, status;

CREATE FUNCTION operation_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE operation_counts SET n = n - 1
            WHERE project_id = OLD.project_id AND kind = OLD.kind AND type = OLD.type
              AND status = OLD.status;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO operation_counts (project_id, kind, type, status, n)
            VALUES (NEW.project_id, NEW.kind, NEW.type, NEW.status, 1)
            ON CONFLICT (project_id, kind, type, status) DO UPDATE
            SET n = operation_counts.n + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER operation_counts_insert AFTER INSERT OR DELETE ON operations
    FOR EACH ROW EXECUTE FUNCTION operation_counts_track();
CREATE TRIGGER operation_counts_status AFTER UPDATE OF status ON operations
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION operation_counts_track();
