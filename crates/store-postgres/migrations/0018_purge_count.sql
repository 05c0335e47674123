-- Deletions reach every process (ARCHITECTURE.md, "The read cache"). Retention and
-- gRPC's DeleteOperation delete operations without a change on the feed, so a process
-- could not tell that another one deleted what it had cached, and cached reads had to
-- expire (after 30 s). Now each transaction that deletes operations counts itself in
-- the feed head and sends the feed's notice, which carries the count: a process whose
-- count moved drops what it cached.
ALTER TABLE feed_head ADD COLUMN purges BIGINT NOT NULL DEFAULT 0;
