//! API keys on PostgreSQL. Creates and revocations go through the writer like every
//! write; lookups run on the pool. Only the SHA-256 of a key is stored.

use async_trait::async_trait;
use opsd_domain::{ApiKey, ProjectScope, Role};
use opsd_store::api_keys::{self, sql as key_sql};
use opsd_store::sessions::{self};
use opsd_store::{KeyStore, Result, StoreError};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::PostgresStore;
use crate::errors::ctx;
use crate::rows::from_micros;

/// The columns [`key`] reads, in its order.
pub const COLUMNS: &str = key_sql::KEY_COLUMNS;

/// Reads one key from a row selected with [`COLUMNS`].
pub fn key(row: &Row) -> Result<ApiKey> {
    let bad = |col: usize, msg: &str| StoreError::Internal(format!("api key column {col}: {msg}"));
    let role: &str = row.get(2);
    let projects: Vec<String> =
        serde_json::from_str(row.get(3)).map_err(|_| bad(3, "bad project list"))?;
    Ok(ApiKey {
        id: text_id(row, 0)?,
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

#[async_trait]
impl KeyStore for PostgresStore {
    fn key_queue(&self) -> &opsd_store::write::Queue {
        &self.queue
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        let client = self.client().await?;
        client
            .query(key_sql::LIST, &[])
            .await
            .map_err(ctx("list api keys"))?
            .iter()
            .map(key)
            .collect()
    }

    async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>> {
        let hash = api_keys::hash(secret);
        let client = self.client().await?;
        let row = client
            .query_opt(key_sql::BY_HASH, &[&hash.as_slice()])
            .await
            .map_err(ctx("authenticate"))?;
        let Some(row) = row else { return Ok(None) };
        let stored: &[u8] = row.get(7);
        let key = key(&row)?;
        Ok((api_keys::hashes_equal(stored, &hash) && key.revoked_at.is_none()).then_some(key))
    }

    async fn session_key(
        &self,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(ApiKey, OffsetDateTime)>> {
        let hash = sessions::hash(secret);
        let client = self.client().await?;
        let row = client
            .query_opt(
                key_sql::SESSION_KEY,
                &[&hash.as_slice(), &opsd_domain::micros(now)],
            )
            .await
            .map_err(ctx("look up session"))?;
        let Some(row) = row else { return Ok(None) };
        let key = key(&row)?;
        Ok(from_micros(row.get(7)).map(|expires| (key, expires)))
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

/// A key id, kept as text (keys are few; their table keeps its first schema).
fn text_id(row: &Row, col: usize) -> Result<Uuid> {
    let s: &str = row
        .try_get(col)
        .map_err(|e| StoreError::Internal(format!("api key column {col}: {e}")))?;
    Uuid::parse_str(s).map_err(|e| StoreError::Internal(format!("api key id {s:?}: {e}")))
}
