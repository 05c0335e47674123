//! What a backup reports, whichever way it was taken (from the file by `opsd backup
//! --data-dir`, or by the server for `POST /v1/admin/backup`).

use serde::{Deserialize, Serialize};

/// The summary of a verified snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Operations in the snapshot.
    pub operations: u64,
    /// History events in the snapshot.
    pub events: u64,
    /// API keys in the snapshot (revoked ones included).
    pub keys: u64,
    /// The snapshot's newest event seq (its feed head).
    pub head: u64,
    /// The snapshot file's size in bytes.
    pub bytes: u64,
    /// SHA-256 of the snapshot file, lowercase hex.
    pub sha256: String,
    /// The schema version the snapshot was written with.
    pub schema_version: i64,
}

/// A snapshot file taken for someone to read (the server streams it): removed when
/// dropped. On Unix a reader that opened it first goes on reading after that.
#[derive(Debug)]
pub struct Taken {
    /// Where the snapshot is.
    pub path: std::path::PathBuf,
    /// What it holds.
    pub summary: Summary,
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a backup file");
        }
    }
}
