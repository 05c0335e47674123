-- The resource and idempotency indexes key on a 64-bit hash of their text instead of
-- the text (ARCHITECTURE.md, "Storage size"). A resource id or request id is any text a
-- client sends (often a 36-character UUID or a path), held in full in every entry of
-- these two indexes; its hash is 8 bytes, and narrow entries also let PostgreSQL pack
-- leaves that grow at a project's end.
--
-- `hashtextextended` is the hash PostgreSQL's own hash partitioning stores on disk, so
-- it stays the same across releases. The text is still compared on the row:
--
-- * a list by resource asks for `resource_id = $r` and for the hash of `$r`, and the
--   index finds the rows with that hash (`opsd_store::sql::list`);
-- * the idempotency key is unique on `(project, hash)`. A batch looks up a create's
--   `request_id` by its hash and gets the operation holding that hash; if that operation
--   has another `request_id` (two ids of one project with the same 64 bits: about one
--   chance in 10^7 for a project of a million ids) the create is refused as a reuse of
--   that key, never stored twice.
DROP INDEX operations_resource_seq;
CREATE INDEX operations_resource_seq ON operations (project, hashtextextended(resource_id, 0), seq);
DROP INDEX operations_request_id;
CREATE UNIQUE INDEX operations_request_id ON operations (project, hashtextextended(request_id, 0))
    WHERE request_id IS NOT NULL;
