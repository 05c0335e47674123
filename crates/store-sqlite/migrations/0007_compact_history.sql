-- Compact history (ARCHITECTURE.md, "History encoding"). An event no longer carries a
-- JSON snapshot of the whole operation, only what a change can touch; the rest comes
-- from the operations row, found by its integer seq instead of the 36-character id.
-- The operation at an event is that row with the event's columns laid over it.
-- This file makes the new table; the migration step in migrations.rs fills it from the
-- old one (decoding each snapshot in Rust, which keeps microsecond times exact), keeps
-- the AUTOINCREMENT counter (the watch head), drops the old table and renames this one.
CREATE TABLE events_compact (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT,
    op_seq                  INTEGER NOT NULL, -- operations.seq
    project_id              TEXT    NOT NULL,
    version                 INTEGER NOT NULL,
    status                  TEXT    NOT NULL,
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
