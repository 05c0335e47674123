-- Live operations (README, "Live operations"): watch replays, worker leases, retention.

-- The operation as it stood right after each change (canonical serde JSON of the domain
-- Operation), so a watch that resumes from an old event replays exactly what GET
-- returned at that version. Events written before this migration have none; the feed
-- horizon below starts after them.
ALTER TABLE events ADD COLUMN snapshot TEXT;
-- Watch backfill: one project's events in commit order.
CREATE INDEX events_project ON events (project_id, seq);

-- The lease of a running operation claimed by a worker. Only a hash of the token is
-- kept; the duration is what each heartbeat extends the lease by.
ALTER TABLE operations ADD COLUMN lease_token_hash TEXT;
ALTER TABLE operations ADD COLUMN lease_worker TEXT;
ALTER TABLE operations ADD COLUMN lease_expires_at INTEGER;
ALTER TABLE operations ADD COLUMN lease_duration_ms INTEGER;
-- Claims take the oldest (lowest seq) operation in a status.
CREATE INDEX operations_claim ON operations (status, seq);
-- Expiry finds the leases that ran out, soonest first.
CREATE INDEX operations_lease_expiry ON operations (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
-- Retention finds terminal operations by age.
CREATE INDEX operations_ended ON operations (ended_at) WHERE ended_at IS NOT NULL;

-- Small facts about the store. `feed_horizon` is the highest event seq that may be
-- missing from the history (deleted by retention, or written before snapshots
-- existed): a watch resuming from below it is told to re-list.
CREATE TABLE meta (
    key     TEXT    PRIMARY KEY,
    value   INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) SELECT 'feed_horizon', COALESCE(MAX(seq), 0) FROM events;
