-- The write path without a lock held across client round trips (ARCHITECTURE.md,
-- "PostgreSQL writes"). A write transaction reads and locks the rows it touches first,
-- decides everything in Rust, and only then sends its writes and COMMIT in one flight
-- whose first statement is this function: it takes the feed head row lock (held until
-- COMMIT, so event seqs follow commit order), reserves `n` event seqs after
-- `last_event_seq` and moves `stamp` to the time the batch stamped on its rows.
--
-- The batch chose that time before it held the lock. If another transaction committed a
-- later stamp meanwhile, this batch would put earlier times after later ones in seq
-- order, and a client walking `updated_at` would miss its changes; so the function
-- refuses with a serialization failure (SQLSTATE 40001) and the writer runs the batch
-- again with a new time. Nothing of the refused batch was acknowledged.
CREATE FUNCTION opsd_advance_feed(n BIGINT, batch_stamp BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    head_seq   BIGINT;
    head_stamp BIGINT;
BEGIN
    SELECT last_event_seq, stamp INTO head_seq, head_stamp
        FROM feed_head WHERE id = 1 FOR UPDATE;
    IF head_stamp > batch_stamp THEN
        RAISE EXCEPTION 'feed head stamp % is later than this batch''s stamp %',
            head_stamp, batch_stamp
            USING ERRCODE = 'serialization_failure';
    END IF;
    UPDATE feed_head SET last_event_seq = head_seq + n, stamp = batch_stamp WHERE id = 1;
    RETURN head_seq;
END;
$$;
