//! Console sessions in SQLite. Creating and ending go through the writer like every
//! write; lookups join `api_keys`, so a revoked key's sessions stop working at once.

use opsd_domain::{ApiKey, micros};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::keys::{COLUMNS, key_from_row};
use crate::rows::from_micros;
use crate::writer::{Write, Written};
use crate::{SqliteStore, mismatched_answer};
use opsd_store::sessions::{self, NewSession};
use opsd_store::{Result, StoreError};

/// A session write for the writer thread.
pub enum SessionWrite {
    Create {
        hash: [u8; 32],
        key_id: Uuid,
        expires_at: OffsetDateTime,
    },
    End {
        hash: [u8; 32],
        now: OffsetDateTime,
    },
}

/// Runs a session write inside the writer's transaction.
pub fn apply(conn: &Connection, write: &SessionWrite, now: OffsetDateTime) -> Result<()> {
    let internal = |e: rusqlite::Error| StoreError::Internal(format!("session write: {e}"));
    match write {
        SessionWrite::Create {
            hash,
            key_id,
            expires_at,
        } => {
            // Only for a live key: a key revoked between verification and here gets none.
            let inserted = conn
                .execute(
                    "INSERT INTO sessions (secret_hash, key_id, created_at, expires_at) \
                     SELECT ?1, id, ?3, ?4 FROM api_keys WHERE id = ?2 AND revoked_at IS NULL",
                    params![
                        hash.as_slice(),
                        key_id.to_string(),
                        micros(now),
                        micros(*expires_at)
                    ],
                )
                .map_err(internal)?;
            if inserted == 0 {
                return Err(StoreError::KeyNotFound(*key_id));
            }
            Ok(())
        }
        SessionWrite::End { hash, now } => {
            conn.execute(
                "DELETE FROM sessions WHERE secret_hash = ?1 OR expires_at <= ?2",
                params![hash.as_slice(), micros(*now)],
            )
            .map_err(internal)?;
            Ok(())
        }
    }
}

impl SqliteStore {
    pub(crate) async fn create_session_impl(
        &self,
        key_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<NewSession> {
        let secret = sessions::generate()
            .map_err(|e| StoreError::Internal(format!("no randomness: {e}")))?;
        let write = SessionWrite::Create {
            hash: sessions::hash(&secret),
            key_id,
            expires_at,
        };
        match self.write(Write::Session(write)).await? {
            Written::Session => Ok(NewSession {
                secret,
                key_id,
                expires_at,
            }),
            _ => Err(mismatched_answer("session")),
        }
    }

    pub(crate) async fn session_key_impl(
        &self,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(ApiKey, OffsetDateTime)>> {
        let hash = sessions::hash(secret);
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("k.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let found = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {cols}, s.expires_at FROM sessions s JOIN api_keys k ON k.id = s.key_id \
                     WHERE s.secret_hash = ?1 AND s.expires_at > ?2 AND k.revoked_at IS NULL"
                ))?
                .query_row(params![hash.as_slice(), micros(now)], |row| {
                    Ok((key_from_row(row)?, row.get::<_, i64>(7)?))
                })
                .optional()
            })
            .await?;
        Ok(found.and_then(|(key, exp)| from_micros(exp).map(|e| (key, e))))
    }

    pub(crate) async fn end_session_impl(&self, secret: &str, now: OffsetDateTime) -> Result<()> {
        let write = SessionWrite::End {
            hash: sessions::hash(secret),
            now,
        };
        match self.write(Write::Session(write)).await? {
            Written::Session => Ok(()),
            _ => Err(mismatched_answer("session")),
        }
    }
}
