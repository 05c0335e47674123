//! API keys in SQLite. Creates and revocations go through the writer like every write;
//! lookups run on the read pool. Only the SHA-256 of a key is stored.

use async_trait::async_trait;
use opsd_domain::{ApiKey, NewApiKey, ProjectScope, Role, micros};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::from_micros;
use crate::writer::{Write, Written};
use crate::{SqliteStore, mismatched_answer};
use opsd_store::api_keys;
use opsd_store::{KeyStore, Result, StoreError};

/// A key write for the writer thread.
pub enum KeyWrite {
    Create {
        key: ApiKey,
        hash: [u8; 32],
        /// Only if no key was ever created (the first admin key).
        only_first: bool,
    },
    Revoke(Uuid),
}

const COLUMNS: &str = "id, name, role, projects, key_prefix, created_at, revoked_at";

fn key_from_row(row: &Row) -> rusqlite::Result<ApiKey> {
    let bad = |col: usize, msg: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Text,
            msg.to_owned().into(),
        )
    };
    let id: String = row.get(0)?;
    let role: String = row.get(2)?;
    let projects: String = row.get(3)?;
    let projects: Vec<String> =
        serde_json::from_str(&projects).map_err(|_| bad(3, "bad project list"))?;
    Ok(ApiKey {
        id: Uuid::parse_str(&id).map_err(|_| bad(0, "bad key id"))?,
        name: row.get(1)?,
        role: Role::parse(&role).ok_or_else(|| bad(2, "unknown role"))?,
        projects: ProjectScope::from_list("projects", &projects)
            .map_err(|_| bad(3, "bad project list"))?,
        prefix: row.get(4)?,
        created_at: from_micros(row.get(5)?).ok_or_else(|| bad(5, "time out of range"))?,
        revoked_at: row
            .get::<_, Option<i64>>(6)?
            .map(|m| from_micros(m).ok_or_else(|| bad(6, "time out of range")))
            .transpose()?,
    })
}

/// Runs a key write inside the writer's transaction; `None` when a first key was asked
/// for and a key already existed.
pub fn apply(conn: &Connection, write: &KeyWrite, now: OffsetDateTime) -> Result<Option<ApiKey>> {
    let internal = |e: rusqlite::Error| StoreError::Internal(format!("api key write: {e}"));
    match write {
        KeyWrite::Create {
            key,
            hash,
            only_first,
        } => {
            if *only_first && ever_had_keys(conn).map_err(internal)? {
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
            .map_err(internal)?;
            Ok(Some(key))
        }
        KeyWrite::Revoke(id) => {
            // Revoking twice keeps the first revocation time.
            conn.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id.to_string(), micros(now)],
            )
            .map_err(internal)?;
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
                [id.to_string()],
                key_from_row,
            )
            .optional()
            .map_err(internal)?
            .ok_or(StoreError::KeyNotFound(*id))
            .map(Some)
        }
    }
}

fn ever_had_keys(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM api_keys LIMIT 1")?
        .exists([])
}

impl SqliteStore {
    async fn insert_key(
        &self,
        new: NewApiKey,
        only_first: bool,
    ) -> Result<Option<(ApiKey, String)>> {
        let api_keys::Minted { key, secret, hash } = api_keys::mint(new)?;
        let write = Write::Key(KeyWrite::Create {
            key,
            hash,
            only_first,
        });
        match self.write(write).await? {
            Written::Key(key) => Ok(key.map(|k| (k, secret))),
            _ => Err(mismatched_answer("key creation")),
        }
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_key(&self, new: NewApiKey) -> Result<(ApiKey, String)> {
        self.insert_key(new, false)
            .await?
            .ok_or_else(|| mismatched_answer("key creation"))
    }

    async fn create_first_key(&self, new: NewApiKey) -> Result<Option<(ApiKey, String)>> {
        self.insert_key(new, true).await
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
            ))?
            .query_map([], key_from_row)?
            .collect()
        })
        .await
    }

    async fn revoke_key(&self, id: Uuid) -> Result<ApiKey> {
        match self.write(Write::Key(KeyWrite::Revoke(id))).await? {
            Written::Key(Some(key)) => Ok(key),
            _ => Err(mismatched_answer("key revocation")),
        }
    }

    async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>> {
        let hash = api_keys::hash(secret);
        let found = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS}, key_hash FROM api_keys WHERE key_hash = ?1"
                ))?
                .query_row([hash.as_slice()], |row| {
                    Ok((key_from_row(row)?, row.get::<_, Vec<u8>>(7)?))
                })
                .optional()
            })
            .await?;
        Ok(found
            .filter(|(key, stored)| {
                api_keys::hashes_equal(stored, &hash) && key.revoked_at.is_none()
            })
            .map(|(key, _)| key))
    }

    async fn has_ever_had_keys(&self) -> Result<bool> {
        self.read(|conn| ever_had_keys(conn)).await
    }
}
