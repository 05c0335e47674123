-- Facts about the store itself, one row per key. `epoch` names this store's line of
-- event seqs: a restore from a backup or a copy into another store starts a new one, so
-- that a watch client's resume point from before (which may name a seq that the new
-- store hands out again for a different change) is recognised and answered with a
-- reset (ARCHITECTURE.md, "Epochs"). `epoch_origin` says what started it.
CREATE TABLE store_meta (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO store_meta (key, value) VALUES
    ('epoch', lower(hex(randomblob(8)))),
    ('epoch_origin', 'created');
