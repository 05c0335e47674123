-- The feed head is taken by one `UPDATE … RETURNING` (`feed::ADVANCE_SQL`) instead of
-- `opsd_advance_feed`, a PL/pgSQL function that selected the row `FOR UPDATE` and then
-- updated it: two statements and a function call on every batch, all while the head is
-- held. What the function did is unchanged: reserve `n` event seqs after the head, move
-- the head's stamp to the batch's time or keep a later one and give the batch that, and
-- refuse with a serialization failure when the head is later and the batch may not take
-- its stamp. Only the refusal needs PL/pgSQL, to raise; it runs only when it refuses.
--
-- `opsd_advance_feed` stays, so that a process of the previous release still writes
-- while the processes around it are upgraded.
CREATE FUNCTION opsd_refuse_stamp(head_stamp BIGINT, batch_stamp BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'feed head stamp % is later than this batch''s stamp %',
        head_stamp, batch_stamp
        USING ERRCODE = 'serialization_failure';
END;
$$;
