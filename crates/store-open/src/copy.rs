//! The two ends of `opsd copy`, named by a data directory (SQLite) or a `postgres://`
//! URL, opened as the backends' copy sources and targets; and the whole copy: a pass,
//! then the verification that reads both stores the way the API does.

use std::path::PathBuf;
use std::str::FromStr;

use opsd_store::StoreError;
use opsd_store::copy::{self, CopySource, CopyTarget, Fingerprint, PassReport};

use crate::{DatabaseUrl, SQLITE_FILE, StoreConfig};

/// A store named on the command line: a `postgres://` (or `postgresql://`) URL, or else
/// a SQLite data directory.
pub fn parse_store(s: &str) -> Result<StoreConfig, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        let url = DatabaseUrl::from_str(s).map_err(|e| e.to_string())?;
        Ok(StoreConfig::Postgres {
            url: Box::new(url),
            pool_size: 8,
        })
    } else if s.is_empty() {
        Err("a store is a data directory or a postgres:// URL, not empty".into())
    } else {
        Ok(StoreConfig::Sqlite {
            data_dir: PathBuf::from(s),
        })
    }
}

/// Opens `config` as a copy source (it may be serving).
pub async fn source(config: &StoreConfig) -> Result<Box<dyn CopySource>, StoreError> {
    Ok(match config {
        StoreConfig::Sqlite { data_dir } => Box::new(opsd_store_sqlite::copy::SqliteCopy::source(
            &data_dir.join(SQLITE_FILE),
        )?),
        StoreConfig::Postgres { url, .. } => {
            Box::new(opsd_store_postgres::copy::PostgresCopy::source(url).await?)
        }
    })
}

/// Opens `config` as a copy target (created and migrated if needed; not serving).
pub async fn target(config: &StoreConfig) -> Result<Box<dyn CopyTarget>, StoreError> {
    Ok(match config {
        StoreConfig::Sqlite { data_dir } => Box::new(opsd_store_sqlite::copy::SqliteCopy::target(
            &data_dir.join(SQLITE_FILE),
        )?),
        StoreConfig::Postgres { url, .. } => {
            Box::new(opsd_store_postgres::copy::PostgresCopy::target(url).await?)
        }
    })
}

/// Both stores' fingerprints, read through the stores as the API reads them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    /// The source's.
    pub source: Fingerprint,
    /// The target's.
    pub target: Fingerprint,
}

impl Verification {
    /// Whether the two stores hold the same.
    pub fn passed(&self) -> bool {
        self.source == self.target
    }
}

/// One pass from `from` into `to` (see `opsd_store::copy`).
pub async fn pass(
    from: &StoreConfig,
    to: &StoreConfig,
    batch_size: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<PassReport, StoreError> {
    let source = source(from).await?;
    let target = target(to).await?;
    copy::pass(&*source, &*target, batch_size, progress).await
}

/// Compares the two stores: counts, and the checksum of every operation's rendered JSON
/// and history.
pub async fn verify(from: &StoreConfig, to: &StoreConfig) -> Result<Verification, StoreError> {
    let source_counts = source(from).await?.counts().await?;
    let target_counts = target(to).await?.counts().await?;
    let source_store = crate::open(from).await?;
    let source = copy::fingerprint(&*source_store, source_counts).await?;
    drop(source_store);
    let target_store = crate::open(to).await?;
    let target = copy::fingerprint(&*target_store, target_counts).await?;
    Ok(Verification { source, target })
}
