//! API keys and console sessions in SQLite: the `KeyStore`. Creates, revocations and
//! sign-outs go through the writer like every write (`writes/keys.rs`,
//! `writes/sessions.rs`); lookups run on the read pool. Only the SHA-256 of a key or a
//! session secret is stored.

use async_trait::async_trait;
use opsd_domain::{ApiKey, ProjectScope, Role, micros};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::rows::from_micros;
use opsd_store::api_keys::{self, sql as key_sql};
use opsd_store::sessions;
use opsd_store::{KeyStore, Result};

pub(crate) const COLUMNS: &str = key_sql::KEY_COLUMNS;

pub(crate) fn key_from_row(row: &Row) -> rusqlite::Result<ApiKey> {
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

pub(crate) fn ever_had_keys(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM api_keys LIMIT 1")?
        .exists([])
}

#[async_trait]
impl KeyStore for SqliteStore {
    fn key_queue(&self) -> &opsd_store::write::Queue {
        &self.queue
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>> {
        self.read(|conn| {
            conn.prepare_cached(key_sql::LIST)?
                .query_map([], key_from_row)?
                .collect()
        })
        .await
    }

    async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>> {
        let hash = api_keys::hash(secret);
        let found = self
            .read(move |conn| {
                conn.prepare_cached(key_sql::BY_HASH)?
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

    async fn session_key(
        &self,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(ApiKey, OffsetDateTime)>> {
        let hash = sessions::hash(secret);
        let found = self
            .read(move |conn| {
                conn.prepare_cached(key_sql::SESSION_KEY)?
                    .query_row(params![hash.as_slice(), micros(now)], |row| {
                        Ok((key_from_row(row)?, row.get::<_, i64>(7)?))
                    })
                    .optional()
            })
            .await?;
        Ok(found.and_then(|(key, exp)| from_micros(exp).map(|e| (key, e))))
    }
}
