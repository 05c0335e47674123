//! The one place that turns configuration into a store: SQLite in a data directory (the
//! embedded default) or PostgreSQL at a URL. The binary and the test suites open stores
//! only through here, so every caller gets the same backend behind the same traits. The
//! two ends of `opsd copy` are opened here too ([`copy`]), since a copy may join both.
//!
//! The suite every backend must pass lives in `opsd-store-suite`, which production
//! builds never link.

use std::path::PathBuf;
use std::sync::Arc;

use opsd_store::{Clock, KeyStore, Store, StoreError};

pub use opsd_store_postgres::DatabaseUrl;

pub mod copy;

/// A store with its key store: what a server needs.
pub trait Backend: Store + KeyStore {}
impl<T: Store + KeyStore> Backend for T {}

/// Which backend to open, and where.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// `opsd.db` in this directory (created if missing).
    Sqlite {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// Where it is (the password is redacted wherever this is shown).
        url: Box<DatabaseUrl>,
        /// Connections in the pool.
        pool_size: usize,
    },
}

impl StoreConfig {
    /// Where the data lives, safe to log (no password).
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Sqlite { data_dir } => {
                format!("sqlite:{}", data_dir.join(SQLITE_FILE).display())
            }
            StoreConfig::Postgres { url, .. } => url.redacted(),
        }
    }
}

/// The database file's name in a data directory.
pub const SQLITE_FILE: &str = "opsd.db";

/// Opens the configured store (applying migrations) on the wall clock.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Backend>, StoreError> {
    open_with_clock(config, None).await
}

/// [`open`] with a substitute clock (tests).
pub async fn open_with_clock(
    config: &StoreConfig,
    clock: Option<Clock>,
) -> Result<Arc<dyn Backend>, StoreError> {
    match config {
        StoreConfig::Sqlite { data_dir } => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                StoreError::Internal(format!(
                    "cannot create data directory {}: {e}",
                    data_dir.display()
                ))
            })?;
            let path = data_dir.join(SQLITE_FILE);
            let clock = clock.unwrap_or_else(opsd_store::rules::wall_clock);
            let store = tokio::task::spawn_blocking(move || {
                opsd_store_sqlite::SqliteStore::open_with_clock(&path, clock)
            })
            .await
            .map_err(|e| StoreError::Internal(format!("open task failed: {e}")))??;
            Ok(Arc::new(store))
        }
        StoreConfig::Postgres { url, pool_size } => {
            let options = opsd_store_postgres::Options {
                pool_size: *pool_size,
                clock,
            };
            Ok(Arc::new(
                opsd_store_postgres::PostgresStore::open(url.as_ref(), options).await?,
            ))
        }
    }
}
