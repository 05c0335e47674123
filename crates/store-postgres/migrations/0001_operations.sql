-- Operations and their change history, as in the SQLite backend: times are microseconds
-- since the Unix epoch (BIGINT), JSON parts are kept as the exact text opsd wrote (not
-- jsonb, which would reorder keys and respell numbers). Every text column compares byte
-- by byte (COLLATE "C"), whatever the database's default collation, so that lists and
-- Google filters order and compare exactly as they do on SQLite.
CREATE TABLE operations (
    seq                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                      TEXT COLLATE "C" NOT NULL UNIQUE,
    project_id              TEXT COLLATE "C" NOT NULL,
    kind                    TEXT COLLATE "C" NOT NULL,
    type                    TEXT COLLATE "C" NOT NULL,
    resource_id             TEXT COLLATE "C" NOT NULL,
    status                  TEXT COLLATE "C" NOT NULL,
    progress                BIGINT NOT NULL,
    status_message          TEXT COLLATE "C",
    description             TEXT COLLATE "C",
    details                 TEXT NOT NULL,
    error                   TEXT,
    warnings                TEXT NOT NULL,
    http_error_status_code  BIGINT,
    http_error_message      TEXT COLLATE "C",
    "user"                  TEXT COLLATE "C",
    request_id              TEXT COLLATE "C",
    request_hash            TEXT,
    region                  TEXT COLLATE "C",
    zone                    TEXT COLLATE "C",
    target_link             TEXT COLLATE "C",
    created_at              BIGINT NOT NULL,
    started_at              BIGINT,
    ended_at                BIGINT,
    updated_at              BIGINT NOT NULL,
    version                 BIGINT NOT NULL
);

-- Idempotency: one request_id per project (creates use ON CONFLICT on it).
CREATE UNIQUE INDEX operations_request_id ON operations (project_id, request_id)
    WHERE request_id IS NOT NULL;

-- Keyset pagination, as on SQLite.
CREATE INDEX operations_created ON operations (project_id, created_at, seq);
CREATE INDEX operations_updated ON operations (project_id, updated_at, seq);
CREATE INDEX operations_status_created ON operations (project_id, status, created_at, seq);
CREATE INDEX operations_status_updated ON operations (project_id, status, updated_at, seq);
CREATE INDEX operations_kind_created ON operations (project_id, kind, created_at, seq);
CREATE INDEX operations_type_created ON operations (project_id, type, created_at, seq);
CREATE INDEX operations_resource_created ON operations (project_id, resource_id, created_at, seq);

-- The seq of an event is assigned by the writer under the feed_head lock (0002), not by
-- a sequence: see feed.rs for why.
CREATE TABLE events (
    seq             BIGINT PRIMARY KEY,
    operation_id    TEXT COLLATE "C" NOT NULL,
    project_id      TEXT COLLATE "C" NOT NULL,
    version         BIGINT NOT NULL,
    status          TEXT COLLATE "C" NOT NULL,
    progress        BIGINT NOT NULL,
    status_message  TEXT COLLATE "C",
    at              BIGINT NOT NULL
);
CREATE INDEX events_operation ON events (operation_id, seq);
