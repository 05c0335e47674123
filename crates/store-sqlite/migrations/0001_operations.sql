-- Operations and their change history. Times are microseconds since the Unix epoch
-- (integers sort and compare cheaply); JSON columns hold the nested parts of the record.
CREATE TABLE operations (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, even after deletes
    id                      TEXT    NOT NULL UNIQUE,
    project_id              TEXT    NOT NULL,
    kind                    TEXT    NOT NULL,
    type                    TEXT    NOT NULL,
    resource_id             TEXT    NOT NULL,
    status                  TEXT    NOT NULL,
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
    request_hash            TEXT,
    region                  TEXT,
    zone                    TEXT,
    target_link             TEXT,
    created_at              INTEGER NOT NULL,
    started_at              INTEGER,
    ended_at                INTEGER,
    updated_at              INTEGER NOT NULL,
    version                 INTEGER NOT NULL
);

-- Idempotency: one request_id per project.
CREATE UNIQUE INDEX operations_request_id ON operations (project_id, request_id)
    WHERE request_id IS NOT NULL;

-- Keyset pagination: every list is one project's, filtered by at most a few equality
-- columns and sorted by created_at or updated_at with seq as the tie-breaker.
CREATE INDEX operations_created ON operations (project_id, created_at, seq);
CREATE INDEX operations_updated ON operations (project_id, updated_at, seq);
CREATE INDEX operations_status_created ON operations (project_id, status, created_at, seq);
CREATE INDEX operations_status_updated ON operations (project_id, status, updated_at, seq);
CREATE INDEX operations_kind_created ON operations (project_id, kind, created_at, seq);
CREATE INDEX operations_type_created ON operations (project_id, type, created_at, seq);
CREATE INDEX operations_resource_created ON operations (project_id, resource_id, created_at, seq);

CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id    TEXT    NOT NULL,
    project_id      TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    progress        INTEGER NOT NULL,
    status_message  TEXT,
    at              INTEGER NOT NULL
);
CREATE INDEX events_operation ON events (operation_id, seq);
