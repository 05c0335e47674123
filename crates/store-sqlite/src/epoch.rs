//! The store's epoch (`store_meta`): the name of its line of event seqs. Migration 12
//! gives a new database one; a restore (or a copy into this store) starts another, so
//! that ids handed out before it are never taken for ids handed out after.

use rusqlite::{Connection, params};

/// The current epoch.
pub fn read(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT value FROM store_meta WHERE key = 'epoch'",
        [],
        |r| r.get(0),
    )
}

/// Starts a new epoch (random, 16 hex digits); `origin` says why (`restored`, `copied`).
/// Returns it.
pub fn renew(conn: &Connection, origin: &str) -> rusqlite::Result<String> {
    conn.execute(
        "INSERT INTO store_meta (key, value) VALUES ('epoch', lower(hex(randomblob(8)))) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [],
    )?;
    conn.execute(
        "INSERT INTO store_meta (key, value) VALUES ('epoch_origin', ?1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![origin],
    )?;
    read(conn)
}
