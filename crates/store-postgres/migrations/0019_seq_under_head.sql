-- Operation seqs taken under the feed head (ARCHITECTURE.md, "Storage size").
--
-- Until now a batch reserved its creates' seqs from the operations' own sequence while
-- it read, before it took the feed head, so two processes could commit creates out of
-- `seq` order, and the list indexes had to hold `created_at` to walk creation order.
-- From this version a new operation's seq is the seq of its creation event, which the
-- feed head hands out (`feed::ADVANCE_SQL`): seqs and stamps then follow commit order
-- across every process, creation order is `seq` order as on SQLite, and three list
-- indexes lose their `created_at` (8 bytes an entry, and entries narrow enough for
-- PostgreSQL to pack leaves that grow at a project's end).
--
-- 1. Operations stored before this version may have been committed out of `seq` order
--    by milliseconds. Such an operation takes the latest earlier `created_at` (and an
--    `updated_at` at least that), which keeps every list in the order it had, as
--    SQLite's version 9 did.
UPDATE operations o
SET created_at = m.floor, updated_at = GREATEST(o.updated_at, m.floor)
FROM (SELECT seq, MAX(created_at) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS floor
      FROM operations) m
WHERE o.seq = m.seq AND o.created_at < m.floor;

-- 2. A new operation's seq must be above every seq an operation ever had (Google's
--    numeric id is the seq, and retention may have deleted the highest), so the head
--    moves past the old sequence's last value. Seqs between are simply never used. A
--    database whose head never moved never committed an operation (each has a
--    creation event), and keeps numbering from 1.
UPDATE feed_head SET last_event_seq = GREATEST(last_event_seq,
    COALESCE(pg_sequence_last_value(pg_get_serial_sequence('operations', 'seq')::regclass), 0),
    COALESCE((SELECT MAX(seq) FROM operations), 0))
WHERE id = 1 AND last_event_seq > 0;

-- 3. The list indexes in creation order walk `seq`.
DROP INDEX operations_status_created;
CREATE INDEX operations_status_seq ON operations (project, status, seq);
DROP INDEX operations_kind_type_created;
CREATE INDEX operations_kind_type_seq ON operations (project, kind, type, seq);
DROP INDEX operations_resource_created;
CREATE INDEX operations_resource_seq ON operations (project, resource_id, seq);

-- 4. A creation-time bound becomes a `seq` bound: the lowest seq from which every
--    operation was created at or after `t` (microseconds), by a binary search over the
--    primary key (about 20 probes for a million rows), as SQLite's backend does.
--
--    The same search for events (`opsd_first_event_at`, version 15) never ended when
--    a probe landed in a gap of deleted seqs below the answer (retention deletes): it
--    kept the bound it had. Both now keep SQLite's invariant, in which every probe
--    moves a bound: seqs below `lo` are stamped before `t`, seqs from `hi` on are not.
CREATE FUNCTION opsd_first_seq_created(t BIGINT) RETURNS BIGINT
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lo BIGINT := 0;
    hi BIGINT;
    mid BIGINT;
    probe BIGINT;
    probe_at BIGINT;
BEGIN
    SELECT COALESCE(MAX(seq), 0) + 1 INTO hi FROM operations;
    WHILE lo < hi LOOP
        mid := lo + (hi - lo) / 2;
        SELECT seq, created_at INTO probe, probe_at FROM operations
            WHERE seq >= mid ORDER BY seq LIMIT 1;
        IF probe IS NOT NULL AND probe_at < t THEN
            lo := probe + 1;
        ELSE
            hi := mid;
        END IF;
    END LOOP;
    RETURN lo;
END
$$;

CREATE OR REPLACE FUNCTION opsd_first_event_at(t BIGINT) RETURNS BIGINT
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lo BIGINT := 0;
    hi BIGINT;
    mid BIGINT;
    probe BIGINT;
    probe_at BIGINT;
BEGIN
    SELECT COALESCE(MAX(seq), 0) + 1 INTO hi FROM events;
    WHILE lo < hi LOOP
        mid := lo + (hi - lo) / 2;
        SELECT seq, at INTO probe, probe_at FROM events
            WHERE seq >= mid ORDER BY seq LIMIT 1;
        IF probe IS NOT NULL AND probe_at < t THEN
            lo := probe + 1;
        ELSE
            hi := mid;
        END IF;
    END LOOP;
    RETURN lo;
END
$$;
