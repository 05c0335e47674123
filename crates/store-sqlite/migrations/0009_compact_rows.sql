-- The compact operations row (ARCHITECTURE.md, "Storage size"). The same content in
-- fewer bytes, in the row and in every index that holds a column:
--
-- * a project is an integer, `projects.n`, instead of its name;
-- * an operation id is its UUID's 16 bytes instead of 36 characters (bytes sort as the
--   lowercase text does, so name order is unchanged);
-- * kind, type and status are small integers (`opsd_store::sql::codes`; the CASEs below
--   are that table and never change);
-- * lists in creation order walk `seq`, so their indexes hold no time. The single
--   writer's stamps never go backwards, so creation order is `seq` order. A release
--   before this one started each run from the clock, so a clock set back across a
--   restart could leave a later operation created before an earlier one: such an
--   operation takes the latest earlier `created_at` (and `updated_at` at least that),
--   which keeps every list in the order it had;
-- * the stats window finds its first event by a binary search over `seq` (event stamps
--   never go backwards either), not by an index on (project, at).
--
-- Both tables are rebuilt and swapped in; their AUTOINCREMENT counters move over first
-- (the events one is the watch head, and retention may have deleted the newest rows).

CREATE TABLE projects (
    n       INTEGER PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE
);
INSERT INTO projects (name)
    SELECT project_id FROM operations UNION SELECT project_id FROM events
    UNION SELECT project_id FROM operation_counts ORDER BY 1;

CREATE TABLE operations_compact (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, even after deletes
    id                      BLOB    NOT NULL UNIQUE,  -- the UUID's 16 bytes
    project                 INTEGER NOT NULL,         -- projects.n
    kind                    INTEGER NOT NULL,         -- codes
    type                    INTEGER NOT NULL,         -- codes
    resource_id             TEXT    NOT NULL,
    status                  INTEGER NOT NULL,         -- codes
    progress                INTEGER NOT NULL,
    status_message          TEXT,
    description             TEXT,
    details                 TEXT    NOT NULL,
    error                   TEXT,
    warnings                TEXT    NOT NULL,
    http_error_status_code  INTEGER,
    http_error_message      TEXT,
    user                    TEXT,
    request_id              TEXT,
    request_hash            BLOB,
    region                  TEXT,
    zone                    TEXT,
    target_link             TEXT,
    created_at              INTEGER NOT NULL,
    started_at              INTEGER,
    ended_at                INTEGER,
    updated_at              INTEGER NOT NULL,
    version                 INTEGER NOT NULL,
    lease_token_hash        TEXT,
    lease_worker            TEXT,
    lease_expires_at        INTEGER,
    lease_duration_ms       INTEGER,
    cancel_requested        INTEGER NOT NULL DEFAULT 0
);

INSERT INTO operations_compact
SELECT seq, unhex(replace(id, '-', '')), p.n,
    CASE kind WHEN 'vm' THEN 0 WHEN 'volume' THEN 1 WHEN 'vpc' THEN 2
        WHEN 'firewall_rule' THEN 3 WHEN 'nks_cluster' THEN 4 WHEN 'nks_node_pool' THEN 5
        WHEN 'connect_connection' THEN 6 WHEN 'nks_load_balancer' THEN 7
        WHEN 'nks_node' THEN 8 END,
    CASE type WHEN 'create' THEN 0 WHEN 'update' THEN 1 WHEN 'delete' THEN 2
        WHEN 'restart' THEN 3 END,
    resource_id,
    CASE status WHEN 'pending' THEN 0 WHEN 'running' THEN 1 WHEN 'done' THEN 2
        WHEN 'failed' THEN 3 WHEN 'unknown' THEN 4 END,
    progress, status_message, description, details, error, warnings,
    http_error_status_code, http_error_message, user, request_id, request_hash, region,
    zone, target_link, created, started_at, ended_at, max(updated_at, created), version,
    lease_token_hash, lease_worker, lease_expires_at, lease_duration_ms, cancel_requested
FROM (SELECT *, max(created_at) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS created
      FROM operations) o
JOIN projects p ON p.name = o.project_id
ORDER BY seq;

CREATE TABLE events_compact (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT,
    op_seq                  INTEGER NOT NULL, -- operations.seq
    project                 INTEGER NOT NULL, -- projects.n
    version                 INTEGER NOT NULL,
    status                  INTEGER NOT NULL, -- codes
    progress                INTEGER NOT NULL,
    status_message          TEXT,
    at                      INTEGER NOT NULL, -- the version's updated_at
    started_at              INTEGER,
    ended_at                INTEGER,
    error                   TEXT,             -- JSON, NULL when none
    warnings                TEXT,             -- JSON array, NULL when none
    http_error_status_code  INTEGER,
    http_error_message      TEXT,
    cancel_requested        INTEGER NOT NULL DEFAULT 0
);

INSERT INTO events_compact
SELECT seq, op_seq, p.n, version,
    CASE status WHEN 'pending' THEN 0 WHEN 'running' THEN 1 WHEN 'done' THEN 2
        WHEN 'failed' THEN 3 WHEN 'unknown' THEN 4 END,
    progress, status_message, at, started_at, ended_at, error, warnings,
    http_error_status_code, http_error_message, cancel_requested
FROM events e JOIN projects p ON p.name = e.project_id
ORDER BY seq;

CREATE TABLE operation_counts_compact (
    project     INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    type        INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (project, kind, type, status)
) WITHOUT ROWID;

INSERT INTO operation_counts_compact
SELECT p.n,
    CASE kind WHEN 'vm' THEN 0 WHEN 'volume' THEN 1 WHEN 'vpc' THEN 2
        WHEN 'firewall_rule' THEN 3 WHEN 'nks_cluster' THEN 4 WHEN 'nks_node_pool' THEN 5
        WHEN 'connect_connection' THEN 6 WHEN 'nks_load_balancer' THEN 7
        WHEN 'nks_node' THEN 8 END,
    CASE type WHEN 'create' THEN 0 WHEN 'update' THEN 1 WHEN 'delete' THEN 2
        WHEN 'restart' THEN 3 END,
    CASE status WHEN 'pending' THEN 0 WHEN 'running' THEN 1 WHEN 'done' THEN 2
        WHEN 'failed' THEN 3 WHEN 'unknown' THEN 4 END,
    c.n
FROM operation_counts c JOIN projects p ON p.name = c.project_id;

DELETE FROM sqlite_sequence WHERE name IN ('operations_compact', 'events_compact');
INSERT INTO sqlite_sequence (name, seq)
    SELECT name || '_compact', seq FROM sqlite_sequence WHERE name IN ('operations', 'events');

DROP TABLE operation_counts;
DROP TABLE events;
DROP TABLE operations;
ALTER TABLE operations_compact RENAME TO operations;
ALTER TABLE events_compact RENAME TO events;
ALTER TABLE operation_counts_compact RENAME TO operation_counts;

-- Idempotency: one request_id per project.
CREATE UNIQUE INDEX operations_request_id ON operations (project, request_id)
    WHERE request_id IS NOT NULL;
-- Keyset pagination: one project's operations, filtered by at most one equality column,
-- in creation order (seq, the rowid every index entry ends with) or update order.
CREATE INDEX operations_created ON operations (project);
CREATE INDEX operations_updated ON operations (project, updated_at);
CREATE INDEX operations_status_created ON operations (project, status);
CREATE INDEX operations_status_updated ON operations (project, status, updated_at);
CREATE INDEX operations_kind_created ON operations (project, kind);
CREATE INDEX operations_type_created ON operations (project, type);
CREATE INDEX operations_resource_created ON operations (project, resource_id);
-- Workers claiming the oldest pending operation.
CREATE INDEX operations_claim ON operations (status);
-- Lease expiry and retention.
CREATE INDEX operations_lease_expiry ON operations (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
CREATE INDEX operations_ended ON operations (ended_at) WHERE ended_at IS NOT NULL;
-- One operation's history; one project's changes in commit order (watch backfill, stats).
CREATE INDEX events_operation ON events (op_seq);
CREATE INDEX events_project ON events (project);

-- The maintained counts behind list totals and the console's project list.
CREATE TRIGGER operation_counts_insert AFTER INSERT ON operations BEGIN
    INSERT INTO operation_counts (project, kind, type, status, n)
        VALUES (NEW.project, NEW.kind, NEW.type, NEW.status, 1)
        ON CONFLICT (project, kind, type, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER operation_counts_status AFTER UPDATE OF status ON operations
WHEN OLD.status != NEW.status BEGIN
    UPDATE operation_counts SET n = n - 1
        WHERE project = OLD.project AND kind = OLD.kind AND type = OLD.type
          AND status = OLD.status;
    INSERT INTO operation_counts (project, kind, type, status, n)
        VALUES (NEW.project, NEW.kind, NEW.type, NEW.status, 1)
        ON CONFLICT (project, kind, type, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER operation_counts_delete AFTER DELETE ON operations BEGIN
    UPDATE operation_counts SET n = n - 1
        WHERE project = OLD.project AND kind = OLD.kind AND type = OLD.type
          AND status = OLD.status;
END;
