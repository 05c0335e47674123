-- A batch that reaches the feed head after another process committed a later stamp is
-- no longer refused: it takes the head's stamp instead (ARCHITECTURE.md, "PostgreSQL
-- writes"). Refusing cost a second replica most of its gain, since every overlap of two
-- processes' batches ran one of them again.
--
-- A batch chooses its time `batch_stamp` (t0) while it reads, before it holds the head.
-- If the head is later by the time it takes it, every time the batch set "now" must
-- become the head's stamp, so that times still never go backwards in seq order. The
-- batch's later statements do that themselves: a time equal to t0 is replaced with the
-- head's stamp, which this transaction now holds (`feed_head.stamp`). That is exact
-- only when no value the batch carries over from before equals t0, i.e. when t0 is
-- later than every stamp committed when the batch read (`may_restamp`): the rows it
-- changes were locked before it read the head, so they carry no later time. When t0 is
-- not (a clock that stood still, or went back), the batch is refused as before
-- (SQLSTATE 40001) and runs again.
--
-- Answers the last seq before the `n` reserved ones, and the stamp the batch gets.
-- The two-argument function of version 10 stays, so that processes of the previous
-- release keep writing during a rolling upgrade (they refuse where this one restamps;
-- both keep the order).
CREATE FUNCTION opsd_advance_feed(n BIGINT, batch_stamp BIGINT, may_restamp BOOLEAN,
                                  OUT seq_before BIGINT, OUT given_stamp BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    head_stamp BIGINT;
BEGIN
    SELECT h.last_event_seq, h.stamp INTO seq_before, head_stamp
        FROM feed_head h WHERE h.id = 1 FOR UPDATE;
    IF head_stamp > batch_stamp AND NOT may_restamp THEN
        RAISE EXCEPTION 'feed head stamp % is later than this batch''s stamp %',
            head_stamp, batch_stamp
            USING ERRCODE = 'serialization_failure';
    END IF;
    given_stamp := GREATEST(head_stamp, batch_stamp);
    UPDATE feed_head h SET last_event_seq = seq_before + n, stamp = given_stamp
        WHERE h.id = 1;
END;
$$;
