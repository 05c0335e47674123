//! API keys on PostgreSQL. Creates and revocations go through the writer like every
//! write; lookups run on the pool. Only the SHA-256 of a key is stored.

use async_trait::async_trait;
use opsd_domain::{ApiKey, NewApiKey, ProjectScope, Role};
use opsd_store::{KeyStore, Result, StoreError, api_keys};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::PostgresStore;
use crate::errors::ctx;
use crate::rows::{from_micros, uuid_at};
use crate::writer::{Write, Written};

/// The columns [`key`] reads.
pub const COLUMNS: &str = "id, name, role, projects, key_prefix, created_at, revoked_at";

/// Reads one key from a row selected with [`COLUMNS`].
pub fn key(row: &Row) -> Result<ApiKey> {
    let bad = |col: usize, msg: &str| StoreError::Internal(format!("api key column {col}: {msg}"));
    let role: &str = row.get(2);
    let projects: Vec<String> =
        serde_json::from_str(row.get(3)).map_err(|_| bad(3, "bad project list"))?;
    Ok(ApiKey {
        id: uuid_at(row, 0)?,
        name: row.get(1),
        role: Role::parse(role).ok_or_else(|| bad(2, "unknown role"))?,
        projects: ProjectScope::from_list("projects", &projects)
            .map_err(|_| bad(3, "bad project list"))?,
        prefix: row.get(4),
        created_at: from_micros(row.get(5)).ok_or_else(|| bad(5, "time out of range"))?,
        revoked_at: row
            .get::<_, Option<i64>>(6)
            .map(|m| from_micros(m).ok_or_else(|| bad(6, "time out of range")))
            .transpose()?,
    })
}

impl PostgresStore {
    async fn insert_key(
        &self,
        new: NewApiKey,
        only_first: bool,
    ) -> Result<Option<(ApiKey, String)>> {
        let api_keys::Minted { key, secret, hash } = api_keys::mint(new)?;
        match self
            .write(Write::CreateKey {
                key,
                hash,
                only_first,
            })
            .await?
        {
            Written::Key(key) => Ok(key.map(|k| (k, secret))),
            _ => Err(crate::mismatched_answer("key creation")),
        }
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn create_key(&self, new: NewApiKey) -> Result<(ApiKey, String)> {
        self.insert_key(new, false)
            .await?
            .ok_or_else(|| crate::mismatched_answer("key creation"))
    }

    async fn create_first_key(&self, new: NewApiKey) -> Result<Option<(ApiKey, String)>> {
        self.insert_key(new, true).await
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"),
                &[],
            )
            .await
            .map_err(ctx("list api keys"))?
            .iter()
            .map(key)
            .collect()
    }

    async fn revoke_key(&self, id: Uuid) -> Result<ApiKey> {
        match self.write(Write::RevokeKey(id)).await? {
            Written::Key(Some(key)) => Ok(key),
            _ => Err(crate::mismatched_answer("key revocation")),
        }
    }

    async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>> {
        let hash = api_keys::hash(secret);
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS}, key_hash FROM api_keys WHERE key_hash = $1"),
                &[&hash.as_slice()],
            )
            .await
            .map_err(ctx("authenticate"))?;
        let Some(row) = row else { return Ok(None) };
        let stored: &[u8] = row.get(7);
        let key = key(&row)?;
        Ok((api_keys::hashes_equal(stored, &hash) && key.revoked_at.is_none()).then_some(key))
    }

    async fn has_ever_had_keys(&self) -> Result<bool> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT 1 FROM api_keys LIMIT 1", &[])
            .await
            .map_err(ctx("look for api keys"))?
            .is_some())
    }
}
