//! Seeding through opsd's own write path without HTTP: the harness opens
//! `opsd_store_sqlite::SqliteStore` in-process on the data directory (or, with
//! `--backend postgres`, the PostgreSQL store through `opsd_store_open::open`) and issues
//! creates and updates many at a time, so the store's group-commit writer batches them
//! exactly as it batches a busy server's writes. The rows are therefore what opsd itself
//! writes (same schema, indexes, events, idempotency hashes), at a fraction of the HTTP
//! cost.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opsd_domain::{NewOperation, Patch, Status};
use opsd_store_open::{Backend, DatabaseUrl, StoreConfig};
use opsd_store_sqlite::SqliteStore;
use tokio::task::JoinSet;
use uuid::Uuid;

/// Writes in flight at once: enough to fill the SQLite writer's 512-write batches (and
/// four of the PostgreSQL writer's 256-write batches).
const IN_FLIGHT: usize = 1024;

/// Connections of the PostgreSQL store while seeding (its writer uses one at a time).
const PG_POOL: usize = 4;

/// Where seeded data goes.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    /// `opsd.db` in this data directory.
    Sqlite(&'a Path),
    /// This PostgreSQL database.
    Postgres(&'a DatabaseUrl),
}

/// An open store, for seeding.
pub struct Seeder {
    store: Arc<dyn Backend>,
    /// Writes issued so far, and the time they took.
    pub writes: u64,
    /// Time spent seeding.
    pub elapsed: Duration,
}

impl Seeder {
    /// Opens the store at `place` (creating `opsd.db`, or applying opsd's migrations to
    /// an empty database). A PostgreSQL store's writer runs on `rt`.
    pub fn open(place: Place<'_>, rt: &tokio::runtime::Runtime) -> Result<Seeder, String> {
        let store: Arc<dyn Backend> = match place {
            Place::Sqlite(data_dir) => {
                std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
                let store =
                    SqliteStore::open(&data_dir.join("opsd.db")).map_err(|e| e.to_string())?;
                Arc::new(store)
            }
            Place::Postgres(url) => rt
                .block_on(opsd_store_open::open(&StoreConfig::Postgres {
                    url: Box::new(url.clone()),
                    pool_size: PG_POOL,
                }))
                .map_err(|e| format!("open {url}: {e}"))?,
        };
        Ok(Seeder {
            store,
            writes: 0,
            elapsed: Duration::ZERO,
        })
    }

    /// Creates `range.len()` operations made by `make(i)`; returns their ids in order.
    pub async fn create(
        &mut self,
        range: std::ops::Range<u64>,
        make: impl Fn(u64) -> NewOperation,
    ) -> Result<Vec<Uuid>, String> {
        let started = Instant::now();
        let n = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(0);
        let mut ids = vec![Uuid::nil(); n];
        let mut tasks = JoinSet::new();
        for (slot, i) in range.enumerate() {
            if tasks.len() >= IN_FLIGHT {
                collect_one(&mut tasks, &mut ids).await?;
            }
            let (store, new) = (self.store.clone(), make(i));
            tasks.spawn(async move {
                let created = store.create(new).await.map_err(|e| e.to_string())?;
                Ok::<_, String>((slot, created.operation.id))
            });
        }
        while !tasks.is_empty() {
            collect_one(&mut tasks, &mut ids).await?;
        }
        self.writes += n as u64;
        self.elapsed += started.elapsed();
        Ok(ids)
    }

    /// Moves every operation in `ids` to `status`.
    pub async fn set_status(&mut self, ids: &[Uuid], status: Status) -> Result<(), String> {
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        let mut ignore = Vec::new();
        for id in ids {
            if tasks.len() >= IN_FLIGHT {
                collect_one(&mut tasks, &mut ignore).await?;
            }
            let (store, id) = (self.store.clone(), *id);
            tasks.spawn(async move {
                let patch = Patch {
                    status: Some(status),
                    ..Patch::default()
                };
                store
                    .update(id, patch, None)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((usize::MAX, id))
            });
        }
        while !tasks.is_empty() {
            collect_one(&mut tasks, &mut ignore).await?;
        }
        self.writes += ids.len() as u64;
        self.elapsed += started.elapsed();
        Ok(())
    }

    /// Closes the store; on SQLite, checkpoints the WAL into the database file, so that
    /// the directory can be copied or served and its size means something.
    pub fn close(self, place: Place<'_>) -> Result<(), String> {
        drop(self.store); // the writer ends when its queue closes
        match place {
            Place::Sqlite(data_dir) => checkpoint(&data_dir.join("opsd.db")),
            // Its connections close as the writer task ends; copying the database as a
            // template waits for that (`pg::Pg::create`).
            Place::Postgres(_) => Ok(()),
        }
    }
}

async fn collect_one(
    tasks: &mut JoinSet<Result<(usize, Uuid), String>>,
    ids: &mut [Uuid],
) -> Result<(), String> {
    match tasks.join_next().await {
        Some(Ok(Ok((slot, id)))) => {
            if let Some(s) = ids.get_mut(slot) {
                *s = id;
            }
            Ok(())
        }
        Some(Ok(Err(e))) => Err(format!("seeding write failed: {e}")),
        Some(Err(e)) => Err(format!("seeding task failed: {e}")),
        None => Ok(()),
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`, waiting for the writer that is shutting down.
pub fn checkpoint(db: &Path) -> Result<(), String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    // The closing writer may still hold the database for a moment: the pragma then
    // answers busy = 1 instead of waiting, so ask again.
    for _ in 0..100 {
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(|e| format!("checkpoint {}: {e}", db.display()))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("checkpoint {}: database stayed busy", db.display()))
}

/// Copies a seeded data directory's database (after [`Seeder::close`]) to `to`.
pub fn copy_db(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for name in ["opsd.db", "opsd.db-wal"] {
        let src = from.join(name);
        if src.exists() {
            std::fs::copy(&src, to.join(name))
                .map_err(|e| format!("copy {}: {e}", src.display()))?;
        }
    }
    Ok(())
}

/// Size of the database file (after a checkpoint), in bytes.
pub fn db_bytes(data_dir: &Path) -> u64 {
    std::fs::metadata(data_dir.join("opsd.db")).map_or(0, |m| m.len())
}
