//! Console session writes, run inside the writer's transaction (lookups are in `keys.rs`
//! at the crate root, joined with `api_keys` so that a revoked key's sessions stop
//! working at once). Only the secret's hash is stored.

use opsd_domain::micros;
use opsd_store::{Result, StoreError};
use rusqlite::{Connection, params};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::internal;

/// A session for a live key: a key revoked between verification and here gets none.
pub fn create(
    conn: &Connection,
    hash: &[u8; 32],
    key_id: Uuid,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<()> {
    let inserted = conn
        .execute(
            "INSERT INTO sessions (secret_hash, key_id, created_at, expires_at) \
             SELECT ?1, id, ?3, ?4 FROM api_keys WHERE id = ?2 AND revoked_at IS NULL",
            params![
                hash.as_slice(),
                key_id.to_string(),
                micros(now),
                micros(expires_at)
            ],
        )
        .map_err(internal("session write"))?;
    if inserted == 0 {
        return Err(StoreError::KeyNotFound(key_id));
    }
    Ok(())
}

/// Sign-out, and the removal of every session expired by `now`.
pub fn end(conn: &Connection, hash: &[u8; 32], now: OffsetDateTime) -> Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE secret_hash = ?1 OR expires_at <= ?2",
        params![hash.as_slice(), micros(now)],
    )
    .map_err(internal("session write"))?;
    Ok(())
}
