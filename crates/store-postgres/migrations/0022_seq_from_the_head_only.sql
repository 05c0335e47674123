-- Every operation seq comes from the feed head (ARCHITECTURE.md, "Storage size"): the
-- writer's since version 19, and a copy's since this version. The operations' own
-- sequence, which version 19 left behind for copies, would now hand out seqs the head
-- has already given: an insert that forgot `seq` would collide with a newer operation,
-- or slip an old seq under newer ones. Without it such an insert fails at once.
ALTER TABLE operations ALTER COLUMN seq DROP IDENTITY;
