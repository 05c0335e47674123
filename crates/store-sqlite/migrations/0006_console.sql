-- Console sessions and the project picture.

-- A browser session made by exchanging an API key (POST /console/sign-in). Only a
-- SHA-256 of the session secret is stored, as for keys. A session is valid while it has
-- not expired and its key is not revoked (checked on every lookup by joining api_keys),
-- so revoking a key ends its sessions. Shared by every replica that shares the database.
CREATE TABLE sessions (
    secret_hash BLOB    PRIMARY KEY,
    key_id      TEXT    NOT NULL REFERENCES api_keys (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Operations per minute by status (GET /v1/operations/stats) reads one project's events
-- over the last hours.
CREATE INDEX events_project_at ON events (project_id, at);
