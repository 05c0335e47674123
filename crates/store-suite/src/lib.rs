//! The suite every storage backend must pass lives in this crate's `tests/it`; the library
//! is what it and the other crates' tests share: fresh stores on the backend the
//! environment names:
//!
//! - `OPSD_TEST_STORE` unset or `sqlite`: a temporary SQLite file;
//! - `OPSD_TEST_STORE=postgres`: a new schema in the database at
//!   `OPSD_TEST_DATABASE_URL` (a throwaway cluster `scripts/test` starts), so every test
//!   has an empty database of its own without the cost of creating one.

use std::sync::Arc;

use opsd_store::{Clock, StoreError};
use tempfile::TempDir;
use uuid::Uuid;

use opsd_store_open::{Backend, DatabaseUrl, StoreConfig};

/// Names the backend under test.
pub const BACKEND_VAR: &str = "OPSD_TEST_STORE";
/// The PostgreSQL server the tests may create schemas in.
pub const DATABASE_URL_VAR: &str = "OPSD_TEST_DATABASE_URL";

/// The backend a test run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL at `OPSD_TEST_DATABASE_URL`.
    Postgres,
}

/// The backend `OPSD_TEST_STORE` names (panics on an unknown name: a typo must not
/// silently test the default).
pub fn backend() -> TestBackend {
    match std::env::var(BACKEND_VAR).as_deref() {
        Err(_) | Ok("" | "sqlite") => TestBackend::Sqlite,
        Ok("postgres") => TestBackend::Postgres,
        Ok(other) => panic!("{BACKEND_VAR}={other:?}: expected sqlite or postgres"),
    }
}

/// Where a test's data lives; reopen it with [`TestDb::open`] after dropping a store.
pub struct TestDb {
    /// The store's configuration (a URL with the test's schema for PostgreSQL).
    pub config: StoreConfig,
    /// The temporary directory (the SQLite file, or files a test writes beside it).
    pub dir: TempDir,
}

impl TestDb {
    /// A new, empty database on the backend under test.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = match backend() {
            TestBackend::Sqlite => StoreConfig::Sqlite {
                data_dir: dir.path().to_owned(),
            },
            TestBackend::Postgres => StoreConfig::Postgres {
                url: Box::new(fresh_schema().await),
                pool_size: 4,
            },
        };
        Self { config, dir }
    }

    /// Opens (or reopens) the store on the wall clock.
    pub async fn open(&self) -> Arc<dyn Backend> {
        self.open_with_clock(None).await
    }

    /// Opens (or reopens) the store on `clock`.
    pub async fn open_with_clock(&self, clock: Option<Clock>) -> Arc<dyn Backend> {
        opsd_store_open::open_with_clock(&self.config, clock)
            .await
            .unwrap_or_else(|e: StoreError| panic!("open {}: {e}", self.config.describe()))
    }

    /// The arguments that point an `opsd` process at this database.
    pub fn serve_args(&self) -> Vec<String> {
        match &self.config {
            StoreConfig::Sqlite { data_dir } => {
                vec!["--data-dir".into(), data_dir.display().to_string()]
            }
            StoreConfig::Postgres { url, .. } => vec![
                "--data-dir".into(),
                self.dir.path().display().to_string(),
                "--database-url".into(),
                url.expose().to_owned(),
            ],
        }
    }
}

/// The flags that point an `opsd` process run on `data_dir` at the backend under test:
/// none for SQLite (it lives in the data directory); for PostgreSQL, `--database-url`
/// with a schema of its own, remembered in the data directory so that restarting on it
/// reopens the same database. Blocking; callable from async code.
pub fn process_store_args(data_dir: &std::path::Path) -> Vec<String> {
    if backend() != TestBackend::Postgres {
        return Vec::new();
    }
    let remembered = data_dir.join("test-database-url");
    let url = match std::fs::read_to_string(&remembered) {
        Ok(url) => url,
        Err(_) => {
            let url = std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(fresh_schema())
            })
            .join()
            .expect("create a test schema");
            std::fs::create_dir_all(data_dir).expect("data directory");
            std::fs::write(&remembered, url.expose()).expect("remember the test database");
            url.expose().to_owned()
        }
    };
    vec!["--database-url".into(), url]
}

/// Creates an empty schema and returns a URL whose connections use it.
pub async fn fresh_schema() -> DatabaseUrl {
    let base = std::env::var(DATABASE_URL_VAR)
        .unwrap_or_else(|_| panic!("{BACKEND_VAR}=postgres needs {DATABASE_URL_VAR}"));
    let url: DatabaseUrl = base.parse().expect("valid test database URL");
    let (client, connection) = url
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let conn = tokio::spawn(connection);
    let schema = format!("t_{}", Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create test schema");
    drop(client);
    let _ = conn.await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
        .parse()
        .expect("URL with schema")
}

/// Every row of every table of the PostgreSQL database a process on `data_dir` used, as
/// text (for tests that search the stored data); `None` on SQLite, whose data are the
/// files in the directory.
pub async fn dump_database(data_dir: &std::path::Path) -> Option<Vec<u8>> {
    let url: DatabaseUrl = std::fs::read_to_string(data_dir.join("test-database-url"))
        .ok()?
        .parse()
        .expect("remembered URL");
    let (client, connection) = url
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
            &[],
        )
        .await
        .expect("list tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut dump = Vec::new();
    for table in tables {
        for row in client
            .query(&format!("SELECT t::text FROM \"{table}\" t"), &[])
            .await
            .expect("read table")
        {
            dump.extend_from_slice(row.get::<_, &str>(0).as_bytes());
            dump.push(b'\n');
        }
    }
    Some(dump)
}
