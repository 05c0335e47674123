-- Per-project counts by kind, type and status, kept up to date by triggers in the same
-- transaction as every insert, status change and delete. A list's total_count over
-- these filters sums a handful of rows instead of counting every matching operation.
CREATE TABLE operation_counts (
    project_id  TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (project_id, kind, type, status)
) WITHOUT ROWID;

INSERT INTO operation_counts (project_id, kind, type, status, n)
    SELECT project_id, kind, type, status, COUNT(*) FROM operations
    GROUP BY project_id, kind, type, status;

CREATE TRIGGER operation_counts_insert AFTER INSERT ON operations BEGIN
    INSERT INTO operation_counts (project_id, kind, type, status, n)
        VALUES (NEW.project_id, NEW.kind, NEW.type, NEW.status, 1)
        ON CONFLICT (project_id, kind, type, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER operation_counts_status AFTER UPDATE OF status ON operations
WHEN OLD.status != NEW.status BEGIN
    UPDATE operation_counts SET n = n - 1
        WHERE project_id = OLD.project_id AND kind = OLD.kind AND type = OLD.type
          AND status = OLD.status;
    INSERT INTO operation_counts (project_id, kind, type, status, n)
        VALUES (NEW.project_id, NEW.kind, NEW.type, NEW.status, 1)
        ON CONFLICT (project_id, kind, type, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER operation_counts_delete AFTER DELETE ON operations BEGIN
    UPDATE operation_counts SET n = n - 1
        WHERE project_id = OLD.project_id AND kind = OLD.kind AND type = OLD.type
          AND status = OLD.status;
END;
