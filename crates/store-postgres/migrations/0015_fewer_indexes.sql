-- Fewer operation indexes, and one event index less (ARCHITECTURE.md, "Storage size").
-- A list that no single index holds in its order walks one index once per value of a
-- column and merges the walks in order (`opsd_store::sql::list`, `merged_column`):
--
-- * `operations_created` and `operations_updated` go: every row is also in
--   `operations_status_created` / `operations_status_updated` under its status, so a
--   list with no equality filter walks those once per status (five codes).
-- * `operations_kind_created` and `operations_type_created` become one
--   `(project, kind, type, created_at, seq)`: a kind filter walks it once per type (four
--   codes), a type filter once per kind (nine).
-- * `events_project_at` goes: the stats window's first event is found by a binary
--   search over `seq` (`opsd_first_event_at`, below), then one project's events are
--   walked by `events_project (project, seq)`, as on SQLite.
--
-- On the benchmark's 250,000 operations the four operation indexes held 280 MiB per
-- million operations and the events index 36, and every new row and version wrote an
-- entry into each.
DROP INDEX operations_created;
DROP INDEX operations_updated;
DROP INDEX operations_kind_created;
DROP INDEX operations_type_created;
CREATE INDEX operations_kind_type_created ON operations (project, kind, type, created_at, seq);
DROP INDEX events_project_at;

-- The first event seq whose `at` is at or after `t` (microseconds): every event at or
-- above it is, every event below it is not. Events' `at` never decreases in `seq` order,
-- because both are given under the feed head (`opsd_advance_feed`). A binary search
-- over the primary key: about 20 index probes for a million events, in one call.
-- Answers one above the last seq when no event is that recent, NULL when there is none.
CREATE FUNCTION opsd_first_event_at(t BIGINT) RETURNS BIGINT
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lo BIGINT;
    hi BIGINT;
    probe BIGINT;
    probe_at BIGINT;
BEGIN
    SELECT seq INTO lo FROM events ORDER BY seq LIMIT 1;
    IF lo IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT seq, at INTO hi, probe_at FROM events ORDER BY seq DESC LIMIT 1;
    IF probe_at < t THEN
        RETURN hi + 1;
    END IF;
    -- Every event below `lo` is before `t`; the event at `hi` is not.
    WHILE lo < hi LOOP
        SELECT seq, at INTO probe, probe_at FROM events
            WHERE seq >= lo + (hi - lo) / 2 ORDER BY seq LIMIT 1;
        IF probe_at >= t THEN
            hi := probe;
        ELSE
            lo := probe + 1;
        END IF;
    END LOOP;
    RETURN lo;
END
$$;
