//! Key writes, run inside the writer's transaction (lookups are in `keys.rs` at the
//! crate root). Only the SHA-256 of a key is stored.

use opsd_domain::{ApiKey, micros};
use opsd_store::{Result, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::internal;
use crate::keys::{COLUMNS, ever_had_keys, key_from_row};

/// Stores a minted key (only its hash); `None` when a first key was asked for and a key
/// already existed.
pub fn create(
    conn: &Connection,
    key: &ApiKey,
    hash: &[u8; 32],
    only_first: bool,
    now: OffsetDateTime,
) -> Result<Option<ApiKey>> {
    if only_first && ever_had_keys(conn).map_err(internal("api key write"))? {
        return Ok(None);
    }
    let mut key = key.clone();
    key.created_at = now;
    conn.execute(
        "INSERT INTO api_keys (id, name, role, projects, key_hash, key_prefix, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            key.id.to_string(),
            key.name,
            key.role.as_str(),
            serde_json::to_string(&key.projects.to_list()).unwrap_or_default(),
            hash.as_slice(),
            key.prefix,
            micros(now),
        ],
    )
    .map_err(internal("api key write"))?;
    Ok(Some(key))
}

/// Revokes a key; revoking twice keeps the first revocation time.
pub fn revoke(conn: &Connection, id: Uuid, now: OffsetDateTime) -> Result<Option<ApiKey>> {
    conn.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![id.to_string(), micros(now)],
    )
    .map_err(internal("api key write"))?;
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
        [id.to_string()],
        key_from_row,
    )
    .optional()
    .map_err(internal("api key write"))?
    .ok_or(StoreError::KeyNotFound(id))
    .map(Some)
}
