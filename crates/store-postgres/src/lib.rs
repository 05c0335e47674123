//! opsd's PostgreSQL backend: the same [`Store`] and `KeyStore` as the embedded SQLite
//! one, for deployments that keep their data on a database server (backed up, replicated
//! and failed over by the tools operators already trust) with one or more opsd
//! processes in front of it.
//!
//! Writes go through one writer task per process (`writer.rs`: group commit, each batch
//! in two round trips, `writes/`; the feed head lock that keeps event seqs in commit
//! order, held only while the database runs a batch's last statements, `feed.rs`);
//! reads use a connection pool (`reads.rs`). Everything that decides what a write does is
//! shared with SQLite (`opsd_store::rules`), and so are the write commands
//! (`opsd_store::write`) and the SQL of lists and Google filters (`opsd_store::sql`).
//! Nothing here assumes a single process: claims and expiries lock rows with `SKIP
//! LOCKED`, migrations take an advisory lock, stamps come from the database's clock.
//!
//! The layout is the SQLite backend's (see its crate documentation); only PostgreSQL has
//! `row_arrays.rs` (set-based writes), `pump.rs` and `listen.rs` (the feed across
//! processes) and `config.rs` (the database URL).

mod config;
pub mod copy;
mod errors;
pub mod feed;
mod gather;
mod keys;
mod listen;
mod migrations;
mod pump;
mod reads;
mod row_arrays;
mod rows;
mod stats;
mod writer;
mod writes;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use opsd_domain::{Event, ListFilter, Operation, Page, PageRequest, Sort};
use opsd_store::{
    Backfill, Clock, FEED_CAPACITY, FeedChange, Result, Store, StoreError, WantWhole, WholeWanted,
};
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

pub use config::DatabaseUrl;
/// A pooled connection (see [`connect`]).
pub use deadpool_postgres::Object as Client;
pub use migrations::MIGRATIONS;

use errors::ctx;
use opsd_store::write::Queue;

/// How many queued writes may wait for the writer before callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;
/// How long a request waits for a pooled connection before it is answered 503.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The age of the oldest event after a seq, in microseconds by the database's clock: a
/// stored event or a creation an operations row stands for (migration 0021).
static FEED_LAG_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} - at FROM ((SELECT seq, at FROM events WHERE seq > $1 ORDER BY seq LIMIT 1) \
         UNION ALL (SELECT seq, created_at FROM operations WHERE seq > $1 \
         AND NOT creation_stored ORDER BY seq LIMIT 1)) AS oldest ORDER BY seq LIMIT 1",
        rows::DB_NOW_MICROS
    )
});

/// How to open the store.
#[derive(Clone)]
pub struct Options {
    /// Connections in the pool (reads and the writer).
    pub pool_size: usize,
    /// A substitute clock for write stamps (tests); `None` uses the database's clock.
    pub clock: Option<Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pool_size: 16,
            clock: None,
        }
    }
}

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    queue: Queue,
    feed: broadcast::Sender<FeedChange>,
    /// Times the listening connection was lost and re-established.
    gaps: Arc<AtomicU64>,
    conflicts: Arc<writer::Conflicts>,
    /// Shared with the pump: the last event seq it published.
    signals: Arc<pump::Signals>,
    /// The store's epoch, read at open (only a copy into this database changes it).
    epoch: String,
    /// Shared with the pump: the projects whose changes watch streams want whole.
    wanted: Arc<WholeWanted>,
    /// Dropped with the store: stops the listener.
    _stop_listening: tokio::sync::watch::Sender<()>,
}

impl PostgresStore {
    /// Connects, applies migrations and starts the writer task. Fails if the database
    /// cannot be reached now; once running, an unreachable database makes requests
    /// answer 503 until it is back.
    pub async fn open(url: &DatabaseUrl, options: Options) -> Result<Self> {
        let pg = url.session_config(CONNECT_TIMEOUT);
        writes::declare_faults();
        let manager = Manager::from_config(
            pg.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .timeouts(Timeouts {
                wait: Some(POOL_WAIT),
                create: Some(CONNECT_TIMEOUT),
                recycle: Some(CONNECT_TIMEOUT),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("connection pool: {e}")))?;
        let (schema, head, epoch) = {
            let mut client = pool.get().await.map_err(errors::pool)?;
            // A migration may rewrite a large table: not bounded like a request.
            client
                .batch_execute("SET statement_timeout = 0")
                .await
                .map_err(ctx("lift the statement timeout to migrate"))?;
            let applied = migrations::migrate(&mut client)
                .await
                .map_err(|e| StoreError::Internal(format!("migrating {url}: {e}")))?;
            client
                .batch_execute("RESET statement_timeout")
                .await
                .map_err(ctx("restore the statement timeout"))?;
            if !applied.is_empty() {
                tracing::info!(?applied, database = %url, "applied migrations");
            }
            if copy::being_copied_into(&client).await? {
                return Err(opsd_store::copy::being_copied_into());
            }
            let row = client
                .query_one(
                    "SELECT current_schema()::text, last_event_seq, \
                     (SELECT value FROM store_meta WHERE key = 'epoch') \
                     FROM feed_head WHERE id = 1",
                    &[],
                )
                .await
                .map_err(ctx("read feed head"))?;
            (
                row.get::<_, String>(0),
                row.get::<_, i64>(1).unsigned_abs(),
                row.get::<_, String>(2),
            )
        };
        let channel = listen::Channel::new(&schema);
        let (queue, rx) = Queue::new();
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let (committed, committed_rx) = mpsc::channel(QUEUE_DEPTH);
        let signals = Arc::new(pump::Signals::default());
        let gaps = Arc::new(AtomicU64::new(0));
        let (stop_listening, stop) = tokio::sync::watch::channel(());
        // A watch without Last-Event-ID starts at the head as of now.
        // Each worker is restarted after a panic (`opsd_store::supervise`); what it
        // keeps across restarts is in a `Kept`.
        let pumped = opsd_store::supervise::Kept::new((committed_rx, head));
        let (p_pool, p_signals, p_feed) = (pool.clone(), signals.clone(), feed.clone());
        let wanted = Arc::new(WholeWanted::default());
        let p_wanted = wanted.clone();
        opsd_store::supervise::task(pump::WORKER, move || {
            pump::run(
                p_pool.clone(),
                pumped.clone(),
                p_signals.clone(),
                p_feed.clone(),
                p_wanted.clone(),
            )
        });
        let mut listener = pg.clone();
        listener.application_name(listen::APPLICATION_NAME);
        let (l_channel, l_gaps, l_signals) = (channel.clone(), gaps.clone(), signals.clone());
        opsd_store::supervise::task(listen::WORKER, move || {
            listen::run(
                listener.clone(),
                l_channel.clone(),
                l_signals.clone(),
                l_gaps.clone(),
                stop.clone(),
            )
        });
        let queued = opsd_store::supervise::Kept::new(rx);
        let (w_pool, clock) = (pool.clone(), options.clock);
        let publish = Arc::new(writer::Publish { committed, channel });
        let conflicts = Arc::new(writer::Conflicts::default());
        let w_conflicts = conflicts.clone();
        opsd_store::supervise::task(writer::WORKER, move || {
            writer::run(
                w_pool.clone(),
                queued.clone(),
                clock.clone(),
                publish.clone(),
                w_conflicts.clone(),
            )
        });
        Ok(Self {
            pool,
            queue,
            feed,
            gaps,
            conflicts,
            signals,
            epoch,
            wanted,
            _stop_listening: stop_listening,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(errors::pool)
    }
}

/// One connection to `url` outside any store, of the kind the writer uses (for tests
/// that drive the feed protocol by hand, such as the forced interleaving test).
pub async fn connect(url: &DatabaseUrl) -> Result<deadpool_postgres::Object> {
    let manager = Manager::new(url.config().clone(), tokio_postgres::NoTls);
    let pool = Pool::builder(manager)
        .max_size(1)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Internal(format!("connection pool: {e}")))?;
    pool.get().await.map_err(errors::pool)
}

#[async_trait]
impl Store for PostgresStore {
    fn queue(&self) -> &Queue {
        &self.queue
    }

    async fn get(&self, id: Uuid) -> Result<Option<Operation>> {
        reads::get(&self.client().await?, id).await
    }

    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<Operation>> {
        reads::get_many(&self.client().await?, ids).await
    }

    async fn list(&self, filter: &ListFilter, sort: &Sort, page: &PageRequest) -> Result<Page> {
        let mut client = self.client().await?;
        let tx = reads::begin_read(&mut client).await?;
        let page = reads::list_page(&tx, filter, sort, page).await?;
        reads::end_read(tx).await?;
        Ok(page)
    }

    async fn events(&self, id: Uuid) -> Result<Vec<Event>> {
        reads::events(&mut self.client().await?, id).await
    }

    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(ctx("ping"))?;
        Ok(())
    }

    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn subscribe(&self) -> broadcast::Receiver<FeedChange> {
        self.feed.subscribe()
    }

    fn want_whole(&self, project_id: &str) -> WantWhole {
        self.wanted.want(project_id)
    }

    fn feed_gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }

    fn feed_store_reads(&self) -> u64 {
        self.signals.read_from_store.load(Ordering::Relaxed)
    }

    fn deletions(&self) -> u64 {
        self.signals.purges.load(Ordering::Relaxed)
    }

    fn write_conflicts(&self) -> opsd_store::WriteConflicts {
        opsd_store::WriteConflicts {
            retried: self.conflicts.retried.load(Ordering::Relaxed),
            restamped: self.conflicts.restamped.load(Ordering::Relaxed),
        }
    }

    /// The feed's lag: how long the oldest committed change this process has not
    /// published yet has been committed (0 when it has published everything), by the
    /// database's clock. The disk is the database server's to watch.
    async fn readiness(&self) -> opsd_store::Readiness {
        let published = self.signals.published.load(Ordering::Relaxed);
        let lag = async {
            let client = self.client().await.ok()?;
            let statement = client.prepare_cached(&FEED_LAG_SQL).await.ok()?;
            let row = client
                .query_opt(&statement, &[&rows::big(published)])
                .await
                .ok()?;
            Some(row.map_or(0, |r| r.get::<_, i64>(0).max(0).unsigned_abs() / 1_000))
        };
        opsd_store::Readiness {
            disk: None,
            feed_lag_ms: lag.await,
        }
    }

    async fn events_since(
        &self,
        project_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Backfill> {
        let mut client = self.client().await?;
        let tx = reads::begin_read(&mut client).await?;
        let backfill = feed::events_since(&tx, project_id, after_seq, limit).await?;
        reads::end_read(tx).await?;
        Ok(backfill)
    }

    async fn stats(
        &self,
        request: &opsd_store::stats::StatsRequest,
    ) -> Result<opsd_store::stats::ProjectStats> {
        let mut client = self.client().await?;
        let tx = reads::begin_read(&mut client).await?;
        let picture = stats::project_stats(&tx, request).await?;
        reads::end_read(tx).await?;
        Ok(picture)
    }

    async fn projects(&self) -> Result<Vec<opsd_store::stats::ProjectCount>> {
        let mut client = self.client().await?;
        let tx = reads::begin_read(&mut client).await?;
        let projects = stats::projects(&tx).await?;
        reads::end_read(tx).await?;
        Ok(projects)
    }

    async fn next_lease_expiry(&self) -> Result<Option<OffsetDateTime>> {
        reads::next_lease_expiry(&self.client().await?).await
    }

    async fn leases_held(&self) -> Result<u64> {
        reads::leases_held(&self.client().await?).await
    }
}
