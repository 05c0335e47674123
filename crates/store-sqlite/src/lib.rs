//! opsd's embedded storage backend: one SQLite database file in WAL mode with
//! `synchronous=FULL`.
//! Writes go through the group-commit writer thread (`writer`); reads use a small pool
//! of read-only connections (point reads on the calling task, lists on tokio's blocking
//! threads), so a slow list never holds up a write and writes never wait for each
//! other's fsync.

mod cancel;
mod checkpoint;
pub mod copy;
pub mod epoch;
mod errors;
mod feed;
mod google_filter;
mod history_migration;
mod keys;
mod leases;
#[cfg(test)]
mod list_plans;
mod migrations;
pub use migrations::MIGRATIONS;
mod retention;
mod rows;
mod sessions;
pub mod snapshot;
mod stats;
mod time_bounds;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use opsd_domain::lease::ClaimRequest;
use opsd_domain::{Event, ListFilter, NewOperation, Operation, Page, PageRequest, Patch, Sort};
use opsd_store::sql::{self, Dialect, PageShape, Param, Statement};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, ParamsFromIter};
use time::OffsetDateTime;
use time_bounds::Stamped;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use opsd_store::{
    Backfill, Change, Claimed, Clock, Created, FEED_CAPACITY, Heartbeat, Preconditions, Renewed,
    Result, Store, StoreError,
};
use writer::{Job, Write, Written};

/// How many queued writes may wait for the writer before callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;
/// Longest `/readyz` waits for its probe write.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Bytes of the database file each read connection maps into memory.
const READER_MMAP_BYTES: i64 = 1 << 30;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 16;

/// The embedded store.
pub struct SqliteStore {
    queue: mpsc::Sender<Job>,
    /// What the writer last learnt of the disk (`/readyz`).
    disk: Arc<writer::DiskHealth>,
    readers: Arc<Readers>,
    feed: broadcast::Sender<Change>,
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
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
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

    pub(crate) async fn write(&self, write: Write) -> Result<Written> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                write,
                reply,
                span: opsd_store::trace::WriteSpan::current(),
            })
            .await
            .map_err(|_| StoreError::Unavailable("the writer thread has stopped".into()))?;
        // A write is dropped unanswered only by a writer that panicked in its batch: the
        // batch rolled back and the supervisor restarts the writer, so retrying is right.
        answer.await.map_err(|_| {
            StoreError::Unavailable("the writer restarted during this write; retry".into())
        })?
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
    async fn create(&self, new: NewOperation) -> Result<Created> {
        match self.write(Write::Create(new)).await? {
            Written::Created(c) => Ok(c),
            _ => Err(mismatched_answer("create")),
        }
    }

    async fn update_with(&self, id: Uuid, patch: Patch, pre: Preconditions) -> Result<Operation> {
        match self.write(Write::Update { id, patch, pre }).await? {
            Written::Updated(op) => Ok(op),
            _ => Err(mismatched_answer("update")),
        }
    }

    async fn get(&self, id: Uuid) -> Result<Option<Operation>> {
        // A point read by a unique index takes microseconds: run it on this task rather
        // than pay two thread switches to the blocking pool and back (the bench measured
        // those switches as most of a GET's cost).
        self.readers.with(move |conn| {
            conn.prepare_cached(&rows::SELECT_BY_ID)?
                .query_row([rows::id_bytes(id)], rows::operation_from_row)
                .optional()
        })
    }

    async fn list(&self, filter: &ListFilter, sort: &Sort, page: &PageRequest) -> Result<Page> {
        let (filter, sort, page) = (filter.clone(), sort.clone(), page.clone());
        self.read(move |conn| list_page(conn, &filter, &sort, &page))
            .await
    }

    async fn events(&self, id: Uuid) -> Result<Vec<Event>> {
        let events = self
            .read(move |conn| {
                let tx = conn.transaction()?;
                let op_seq: Option<i64> = tx
                    .prepare_cached("SELECT seq FROM operations WHERE id = ?1")?
                    .query_row([rows::id_bytes(id)], |r| r.get(0))
                    .optional()?;
                let Some(op_seq) = op_seq else {
                    return Ok(None);
                };
                let events = tx
                    .prepare_cached(
                        "SELECT seq, version, status, progress, status_message, at \
                         FROM events WHERE op_seq = ?1 ORDER BY seq",
                    )?
                    .query_map([op_seq], |r| rows::event_from_row(r, id))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(Some(events))
            })
            .await?;
        events.ok_or(StoreError::NotFound(id))
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

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    /// The writer publishes each commit itself before answering, so the feed never
    /// trails the database. The disk is what the last write met; when that was a
    /// failure, a probe write (bounded by `PROBE_TIMEOUT`) tells whether it is over,
    /// so that `/readyz` turns ready again without waiting for traffic it keeps away.
    async fn readiness(&self) -> opsd_store::Readiness {
        let mut disk = self.disk.get();
        if disk != "ok" {
            let probe = tokio::time::timeout(PROBE_TIMEOUT, self.write(Write::Probe)).await;
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

    /// One process serves a SQLite database: its writer publishes every change, and only
    /// its retention task deletes.
    fn sole_writer(&self) -> bool {
        true
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

    async fn claim(&self, request: ClaimRequest) -> Result<Option<Claimed>> {
        match self.write(Write::Claim(request)).await? {
            Written::Claimed(c) => Ok(c),
            _ => Err(mismatched_answer("claim")),
        }
    }

    async fn heartbeat(&self, id: Uuid, heartbeat: Heartbeat) -> Result<Renewed> {
        match self.write(Write::Heartbeat { id, heartbeat }).await? {
            Written::Renewed(r) => Ok(r),
            _ => Err(mismatched_answer("heartbeat")),
        }
    }

    async fn cancel(&self, id: Uuid) -> Result<Operation> {
        match self.write(Write::Cancel(id)).await? {
            Written::Updated(op) => Ok(op),
            _ => Err(mismatched_answer("cancel")),
        }
    }

    async fn expire_leases(&self, limit: usize) -> Result<Vec<Operation>> {
        match self.write(Write::ExpireLeases { limit }).await? {
            Written::Expired(ops) => Ok(ops),
            _ => Err(mismatched_answer("lease expiry")),
        }
    }

    async fn next_lease_expiry(&self) -> Result<Option<OffsetDateTime>> {
        self.read(|conn| leases::next_expiry(conn)).await
    }

    async fn leases_held(&self) -> Result<u64> {
        self.read(|conn| leases::held_count(conn)).await
    }

    async fn purge_terminal(&self, before: OffsetDateTime, batch_size: usize) -> Result<u64> {
        match self.write(Write::Purge { before, batch_size }).await? {
            Written::Purged(n) => Ok(n),
            _ => Err(mismatched_answer("purge")),
        }
    }

    async fn delete_finished(&self, id: Uuid) -> Result<()> {
        match self.write(Write::Delete(id)).await? {
            Written::Purged(_) => Ok(()),
            _ => Err(mismatched_answer("delete")),
        }
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

/// The writer answered a write with the outcome of another kind of write (a bug).
fn mismatched_answer(what: &str) -> StoreError {
    StoreError::Internal(format!("writer answered a {what} with something else"))
}

/// One page: rows after the cursor in its direction (limit + 1 to learn whether more
/// follow), a probe for rows on the other side, and the total if asked for — all in one read
/// transaction, so the three agree with each other. The SQL is shared with every
/// backend (`opsd_store::sql`).
fn list_page(
    conn: &mut Connection,
    filter: &ListFilter,
    sort: &Sort,
    page: &PageRequest,
) -> rusqlite::Result<Page> {
    let tx = conn.transaction()?;
    let mut binder = Binder::new(&tx);
    let shape = PageShape::new(sort, page);
    let total: i64 = if page.count_total {
        let count = sql::count_query(Dialect::Sqlite, filter);
        tx.prepare_cached(&count.sql)?
            .query_row(binder.bind(&count)?, |r| r.get(0))?
    } else {
        0
    };
    let rows = sql::page_query(
        Dialect::Sqlite,
        rows::OPERATION_COLUMNS.as_str(),
        filter,
        sort,
        shape.direction(),
        shape.after(),
        shape.fetch(),
    );
    let items = tx
        .prepare_cached(&rows.sql)?
        .query_map(binder.bind(&rows)?, rows::operation_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let cut = shape.cut(items);
    let beyond = match &cut.probe {
        Some((direction, pos)) => {
            let probe = sql::exists_beyond_query(Dialect::Sqlite, filter, sort, *direction, pos);
            tx.prepare_cached(&probe.sql)?
                .exists(binder.bind(&probe)?)?
        }
        None => false,
    };
    Ok(shape.finish(cut, beyond, total.unsigned_abs()))
}

/// Binds shared statements on one connection. A time bound becomes a `seq` by a binary
/// search (`time_bounds`); the statements of one page (its rows, the probe, the count)
/// share their bounds, so each is searched once per page, not once per statement.
struct Binder<'c> {
    conn: &'c Connection,
    /// (microseconds, the first seq created from then) already searched.
    seqs: Vec<(i64, i64)>,
}

impl<'c> Binder<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            seqs: Vec::new(),
        }
    }

    /// The parameters of a shared statement, as rusqlite binds them.
    fn bind(&mut self, statement: &Statement) -> rusqlite::Result<ParamsFromIter<Vec<Value>>> {
        let mut values = Vec::with_capacity(statement.params.len());
        for p in &statement.params {
            values.push(match p {
                Param::Text(s) => Value::Text(s.clone()),
                Param::Int(n) => Value::Integer(*n),
                Param::Blob(b) => Value::Blob(b.clone()),
                Param::Uuid(id) => Value::Blob(id.as_bytes().to_vec()),
                Param::FirstSeqCreatedFrom(micros) => Value::Integer(self.first_seq_from(*micros)?),
            });
        }
        Ok(rusqlite::params_from_iter(values))
    }

    fn first_seq_from(&mut self, micros: i64) -> rusqlite::Result<i64> {
        if let Some((_, seq)) = self.seqs.iter().find(|(m, _)| *m == micros) {
            return Ok(*seq);
        }
        let seq = time_bounds::first_seq_from(self.conn, Stamped::OperationsCreated, micros)?;
        self.seqs.push((micros, seq));
        Ok(seq)
    }
}
