-- Live operations: watch replays, worker leases, retention.

-- The operation as it stood right after each change (canonical serde JSON), so a watch
-- that resumes replays exactly what GET returned at that version.
ALTER TABLE events ADD COLUMN snapshot TEXT;
CREATE INDEX events_project ON events (project_id, seq);

-- The lease of a running operation: a hash of the token, the worker, when it runs out
-- and how long each heartbeat extends it.
ALTER TABLE operations ADD COLUMN lease_token_hash TEXT;
ALTER TABLE operations ADD COLUMN lease_worker TEXT;
ALTER TABLE operations ADD COLUMN lease_expires_at BIGINT;
ALTER TABLE operations ADD COLUMN lease_duration_ms BIGINT;
CREATE INDEX operations_claim ON operations (status, seq);
CREATE INDEX operations_lease_expiry ON operations (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
CREATE INDEX operations_ended ON operations (ended_at) WHERE ended_at IS NOT NULL;

-- The head of the change feed: one row, locked by every write transaction before it
-- changes anything (SELECT … FOR UPDATE) and held until COMMIT. While it is held, the
-- transaction assigns event seqs after `last_event_seq` and stamps its writes with
-- `stamp`; so seqs and timestamps follow commit order across every process writing to
-- this database. `feed_horizon` is the highest event seq that retention may have
-- deleted: a watch resuming from below it is told to re-list.
CREATE TABLE feed_head (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_seq  BIGINT NOT NULL,
    stamp           BIGINT NOT NULL,
    feed_horizon    BIGINT NOT NULL
);
INSERT INTO feed_head (id, last_event_seq, stamp, feed_horizon) VALUES (1, 0, 0, 0);
