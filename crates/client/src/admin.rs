//! Administration (admin keys only): download a backup of a SQLite-backed server, and
//! switch the server read-only or back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::retry::Idempotency;
use crate::{Client, Error, Result};

/// How long a backup download may take in all.
const BACKUP_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// A backup being received: the server's summary, then the file in chunks.
pub struct BackupDownload {
    /// SHA-256 of the file, lowercase hex, as the server computed it.
    pub sha256: Option<String>,
    /// Operations in the snapshot.
    pub operations: Option<u64>,
    /// History events in the snapshot.
    pub events: Option<u64>,
    /// API keys in the snapshot.
    pub keys: Option<u64>,
    /// The file's length in bytes.
    pub length: Option<u64>,
    response: reqwest::Response,
}

impl BackupDownload {
    /// The next chunk of the file; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>> {
        self.response
            .chunk()
            .await
            .map(|c| c.map(|b| b.to_vec()))
            .map_err(Error::from_reqwest)
    }
}

#[derive(Serialize, Deserialize)]
struct ReadOnly {
    read_only: bool,
}

impl Client {
    /// Asks the server for a backup (`POST /v1/admin/backup`). A PostgreSQL-backed
    /// server answers `not_supported_for_backend`.
    pub async fn backup(&self) -> Result<BackupDownload> {
        let response = self
            .send(Idempotency::Safe, BACKUP_LIMIT, |http| {
                http.post(self.url("/v1/admin/backup"))
            })
            .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let number = |name: &str| header(name).and_then(|v| v.parse().ok());
        Ok(BackupDownload {
            sha256: header("x-opsd-backup-sha256"),
            operations: number("x-opsd-backup-operations"),
            events: number("x-opsd-backup-events"),
            keys: number("x-opsd-backup-keys"),
            length: response.content_length(),
            response,
        })
    }

    /// Makes the server refuse writes (`true`) or accept them again (`false`).
    pub async fn set_read_only(&self, read_only: bool) -> Result<bool> {
        let answer: ReadOnly = self
            .json(Idempotency::Safe, |http| {
                http.put(self.url("/v1/admin/read_only"))
                    .json(&ReadOnly { read_only })
            })
            .await?;
        Ok(answer.read_only)
    }
}
