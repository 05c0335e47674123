//! Where the data lives: the flags every subcommand that touches the store shares
//! (`serve`, `migrate`, `keys`). Without `--database-url`, SQLite in `--data-dir`;
//! with it, PostgreSQL, and the data directory then holds only the first admin key's
//! file. The URL's password is never printed: not by `--help` (environment values are
//! hidden), not in logs or errors (the URL type redacts it).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use opsd_store_open::{Backend, DatabaseUrl, StoreConfig};

use crate::BoxError;

/// Flags that choose and reach the store.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Directory for the SQLite database and the first admin key (created if missing).
    #[arg(long, env = "OPSD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Store in PostgreSQL instead of SQLite: postgres://user:password@host:port/db.
    #[arg(long, env = "OPSD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,
    /// Connections in the PostgreSQL pool (per opsd process).
    #[arg(long, env = "OPSD_DB_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(2..=1000))]
    pub db_pool_size: u16,
}

impl StoreArgs {
    /// The store these flags name.
    pub fn config(&self) -> StoreConfig {
        match &self.database_url {
            Some(url) => StoreConfig::Postgres {
                url: Box::new(url.clone()),
                pool_size: usize::from(self.db_pool_size),
            },
            None => StoreConfig::Sqlite {
                data_dir: self.data_dir.clone(),
            },
        }
    }

    /// Opens the store (applying migrations).
    pub async fn open(&self) -> Result<Arc<dyn Backend>, BoxError> {
        let config = self.config();
        opsd_store_open::open(&config)
            .await
            .map_err(|e| format!("cannot open the store ({}): {e}", config.describe()).into())
    }
}
