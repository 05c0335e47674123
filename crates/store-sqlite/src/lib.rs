//! opsd's embedded storage backend: one SQLite database file in WAL mode with
//! `synchronous=FULL`.
//! Writes go through the group-commit writer thread (`writer.rs`; what each write does,
//! `writes/`); reads use a small pool of read-only connections (`reads.rs`: point reads
//! on the calling task, lists on tokio's blocking threads), so a slow list never holds
//! up a write and writes never wait for each other's fsync.
//!
//! The PostgreSQL backend has the same layout: `lib.rs` (the `Store`), `writer.rs`,
//! `writes/`, `reads.rs`, `keys.rs` (the `KeyStore`), `feed.rs`, `rows.rs`, `stats.rs`,
//! `copy.rs`, `errors.rs`, `migrations.rs`; what only SQLite needs is in `checkpoint.rs`,
//! `snapshot.rs` (backups), `epoch.rs`, `google_filter.rs` (`regexp()`),
//! `time_bounds.rs` and `history_migration.rs`.

mod checkpoint;
pub mod copy;
pub mod epoch;
mod errors;
mod feed;
mod google_filter;
mod history_migration;
mod keys;
#[cfg(test)]
mod list_plans;
mod migrations;
pub use migrations::MIGRATIONS;
mod reads;
mod rows;
pub mod snapshot;
mod stats;
mod time_bounds;
mod writer;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use opsd_domain::{Event, ListFilter, Operation, Page, PageRequest, Sort};
use rusqlite::{Connection, OpenFlags};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use uuid::Uuid;

use opsd_store::write::{Queue, Write};
use opsd_store::{Backfill, Clock, FEED_CAPACITY, FeedChange, Result, Store, StoreError};

/// Longest `/readyz` waits for its probe write.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Bytes of the database file each read connection maps into memory.
const READER_MMAP_BYTES: i64 = 1 << 30;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 16;

/// The embedded store.
pub struct SqliteStore {
    queue: Queue,
    /// What the writer last learnt of the disk (`/readyz`).
    disk: Arc<writer::DiskHealth>,
    readers: Arc<Readers>,
    feed: broadcast::Sender<FeedChange>,
    /// The store's epoch, read at open (only an offline restore or copy changes it).
    epoch: String,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies migrations and starts
    /// the writer thread.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_clock(path, opsd_store::rules::wall_clock())
    }

    /// [`open`](Self::open) with a substitute clock (tests).
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Self> {
        let mut conn = Connection::open(path).map_err(open_error(path))?;
        // WAL lets readers run beside the writer; FULL syncs the WAL on every commit,
        // which is what makes an acknowledged write survive power loss.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; \
             PRAGMA foreign_keys = ON;",
        )
        .map_err(open_error(path))?;
        let applied = migrations::migrate(&mut conn).map_err(open_error(path))?;
        if !applied.is_empty() {
            tracing::info!(?applied, path = %path.display(), "applied migrations");
        }
        let epoch = epoch::read(&conn).map_err(open_error(path))?;
        if copy::being_copied_into(&conn).map_err(open_error(path))? {
            return Err(opsd_store::copy::being_copied_into());
        }
        // Writes that run in a savepoint (all but creates and updates) have undo pages
        // (the statement journal) that SQLite otherwise writes to a temporary file: when
        // every write had one, a third of the writer's time went to those pwrite()
        // calls. A batch's undo pages are a few MiB at most.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(open_error(path))?;
        let checkpointer = checkpoint::Checkpointer::start(&conn, path)?;
        let (queue, rx) = Queue::new();
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let disk = Arc::new(writer::DiskHealth::default());
        let mut state = writer::Writer {
            conn,
            queue: rx,
            clock,
            feed: feed.clone(),
            checkpointer,
            replies: writer::Replies::here(),
            disk: disk.clone(),
        };
        // Restarted after a panic (`opsd_store::supervise`), with the same queue.
        opsd_store::supervise::thread(writer::WORKER, move || writer::run(&mut state))
            .map_err(|e| StoreError::Internal(format!("cannot start writer thread: {e}")))?;
        Ok(Self {
            queue,
            disk,
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
            feed,
            epoch,
        })
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}

fn open_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Internal(format!("cannot open {}: {e}", path.display()))
}

/// A pool of read-only connections, opened on demand.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let pooled = self.idle.lock().map_err(|_| poisoned())?.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(open_error(&self.path))?;
                c.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(open_error(&self.path))?;
                // Map the file instead of copying pages with pread() on every read.
                c.pragma_update(None, "mmap_size", READER_MMAP_BYTES)
                    .map_err(open_error(&self.path))?;
                google_filter::register_regexp(&c).map_err(open_error(&self.path))?;
                c
            }
        };
        let result = f(&mut conn).map_err(|e| errors::classify("read failed", &e));
        let mut idle = self.idle.lock().map_err(|_| poisoned())?;
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

fn poisoned() -> StoreError {
    StoreError::Internal("reader pool lock poisoned".into())
}

#[async_trait]
impl Store for SqliteStore {
    fn queue(&self) -> &Queue {
        &self.queue
    }

    async fn get(&self, id: Uuid) -> Result<Option<Operation>> {
        // A point read by a unique index takes microseconds: run it on this task rather
        // than pay two thread switches to the blocking pool and back (the bench measured
        // those switches as most of a GET's cost).
        self.readers.with(move |conn| reads::get(conn, id))
    }

    async fn list(&self, filter: &ListFilter, sort: &Sort, page: &PageRequest) -> Result<Page> {
        let (filter, sort, page) = (filter.clone(), sort.clone(), page.clone());
        self.read(move |conn| reads::list_page(conn, &filter, &sort, &page))
            .await
    }

    async fn events(&self, id: Uuid) -> Result<Vec<Event>> {
        self.read(move |conn| reads::events(conn, id))
            .await?
            .ok_or(StoreError::NotFound(id))
    }

    async fn ping(&self) -> Result<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    fn epoch(&self) -> &str {
        &self.epoch
    }

    async fn backup(&self) -> Result<opsd_store::backup::Taken> {
        let from = self.readers.path.clone();
        // Beside the database: the same filesystem, which has room for the database.
        let to = from.with_file_name(format!(".opsd-backup-{}.db", Uuid::now_v7()));
        let path = to.clone();
        let summary = tokio::task::spawn_blocking(move || snapshot::backup(&from, &to, &|_| {}))
            .await
            .map_err(|e| StoreError::Internal(format!("backup task failed: {e}")))?
            .map_err(|e| match e {
                snapshot::SnapshotError::Io(detail) => StoreError::Unavailable(detail),
                other => StoreError::Internal(other.to_string()),
            })?;
        Ok(opsd_store::backup::Taken { path, summary })
    }

    fn subscribe(&self) -> broadcast::Receiver<FeedChange> {
        self.feed.subscribe()
    }

    /// The writer publishes each commit itself before answering, so the feed never
    /// trails the database. The disk is what the last write met; when that was a
    /// failure, a probe write (bounded by `PROBE_TIMEOUT`) tells whether it is over,
    /// so that `/readyz` turns ready again without waiting for traffic it keeps away.
    async fn readiness(&self) -> opsd_store::Readiness {
        let mut disk = self.disk.get();
        if disk != "ok" {
            let probe = tokio::time::timeout(PROBE_TIMEOUT, self.queue.send(Write::Probe)).await;
            if let Ok(Ok(_)) = probe {
                disk = "ok";
            } else {
                disk = self.disk.get();
                if disk == "ok" {
                    // The probe failed some other way (the writer restarting, busy).
                    disk = "error";
                }
            }
        }
        opsd_store::Readiness {
            disk: Some(disk),
            feed_lag_ms: Some(0),
        }
    }

    async fn events_since(
        &self,
        project_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Backfill> {
        let project_id = project_id.to_owned();
        self.read(move |conn| feed::events_since(conn, &project_id, after_seq, limit))
            .await
    }

    async fn next_lease_expiry(&self) -> Result<Option<OffsetDateTime>> {
        self.read(|conn| reads::next_lease_expiry(conn)).await
    }

    async fn leases_held(&self) -> Result<u64> {
        self.read(|conn| reads::leases_held(conn)).await
    }

    async fn stats(
        &self,
        request: &opsd_store::stats::StatsRequest,
    ) -> Result<opsd_store::stats::ProjectStats> {
        let request = request.clone();
        self.read(move |conn| stats::project_stats(conn, &request))
            .await
    }

    async fn projects(&self) -> Result<Vec<opsd_store::stats::ProjectCount>> {
        self.read(stats::projects).await
    }
}
