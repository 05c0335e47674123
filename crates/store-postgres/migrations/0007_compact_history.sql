-- Compact history (ARCHITECTURE.md, "History encoding"). An event no longer carries a
-- JSON snapshot of the whole operation, only what a change can touch; the rest comes
-- from the operations row, found by its seq instead of the 36-character id. The
-- operation at an event is that row with the event's columns laid over it. The table is
-- rebuilt (not altered) so that the converted history takes only the space it needs.
CREATE TABLE events_compact (
    seq                     BIGINT PRIMARY KEY,
    op_seq                  BIGINT NOT NULL, -- operations.seq
    project_id              TEXT COLLATE "C" NOT NULL,
    version                 BIGINT NOT NULL,
    status                  TEXT COLLATE "C" NOT NULL,
    progress                BIGINT NOT NULL,
    status_message          TEXT COLLATE "C",
    at                      BIGINT NOT NULL, -- the version's updated_at
    started_at              BIGINT,
    ended_at                BIGINT,
    error                   TEXT,            -- JSON, NULL when none
    warnings                TEXT,            -- JSON array, NULL when none
    http_error_status_code  BIGINT,
    http_error_message      TEXT COLLATE "C",
    cancel_requested        BOOLEAN NOT NULL DEFAULT false
);

-- Microseconds since the epoch of an RFC 3339 time in a snapshot, exactly (whole
-- seconds, then the microseconds of the seconds field).
CREATE OR REPLACE FUNCTION pg_temp.opsd_micros(t TEXT) RETURNS BIGINT LANGUAGE SQL IMMUTABLE AS $$
    SELECT EXTRACT(EPOCH FROM date_trunc('second', t::timestamptz))::bigint * 1000000
        + EXTRACT(MICROSECONDS FROM t::timestamptz)::bigint % 1000000
$$;

-- An event whose operation is gone (opsd deletes both together, so none should exist)
-- cannot be rebuilt: the horizon moves above it, so a watch resuming from before it
-- re-lists instead of missing it.
UPDATE feed_head SET feed_horizon = GREATEST(feed_horizon, COALESCE((
    SELECT MAX(e.seq) FROM events e
    WHERE NOT EXISTS (SELECT 1 FROM operations o WHERE o.id = e.operation_id)), 0))
WHERE id = 1;

-- Events from before snapshots existed lie at or below the feed horizon and are never
-- replayed; they keep the columns they had. The snapshot is read as `json` (not
-- `jsonb`) so that error and warnings keep the text serde wrote.
INSERT INTO events_compact (seq, op_seq, project_id, version, status, progress,
    status_message, at, started_at, ended_at, error, warnings, http_error_status_code,
    http_error_message, cancel_requested)
SELECT e.seq, o.seq, e.project_id, e.version, e.status, e.progress, e.status_message, e.at,
    pg_temp.opsd_micros(s.j->>'started_at'),
    pg_temp.opsd_micros(s.j->>'ended_at'),
    CASE WHEN json_typeof(s.j->'error') = 'object' THEN (s.j->'error')::text END,
    CASE WHEN json_array_length(s.j->'warnings') > 0 THEN (s.j->'warnings')::text END,
    (s.j->>'http_error_status_code')::bigint,
    s.j->>'http_error_message',
    COALESCE((s.j->>'cancel_requested')::boolean, false)
FROM events e
JOIN operations o ON o.id = e.operation_id
CROSS JOIN LATERAL (SELECT e.snapshot::json AS j) s;

DROP TABLE events;
ALTER TABLE events_compact RENAME TO events;
ALTER INDEX events_compact_pkey RENAME TO events_pkey;
-- The events list and retention: one operation's events in order.
CREATE INDEX events_operation ON events (op_seq, seq);
-- Watch backfill: one project's events in commit order.
CREATE INDEX events_project ON events (project_id, seq);
-- Operations per minute by status (stats).
CREATE INDEX events_project_at ON events (project_id, at);
