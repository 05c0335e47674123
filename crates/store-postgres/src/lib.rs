//! opsd's PostgreSQL backend: the same [`Store`] and `KeyStore` as the embedded SQLite
//! one, for deployments that keep their data on a database server (backed up, replicated
//! and failed over by the tools operators already trust) with one or more opsd
//! processes in front of it.
//!
//! Writes go through one writer task per process (`writer.rs`: group commit, each batch
//! in two round trips, `batch/`; the feed head lock that keeps event seqs in commit
//! order, held only while the database runs a batch's last statements, `feed.rs`);
//! reads use a connection pool. Everything that decides what a write does is shared with SQLite
//! (`opsd_store::rules`), and so is the SQL of lists and Google filters
//! (`opsd_store::sql`). Nothing here assumes a single process: claims and expiries lock
//! rows with `SKIP LOCKED`, migrations take an advisory lock, stamps come from the
//! database's clock.

mod batch;
mod config;
pub mod copy;
mod errors;
pub mod feed;
mod keys;
mod listen;
mod migrations;
mod pump;
mod rows;
mod stats;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use opsd_domain::lease::ClaimRequest;
use opsd_domain::{
    Direction, Event, ListFilter, NewOperation, Operation, Page, PageRequest, Patch, Position, Sort,
};
use opsd_store::sql::{self, Dialect, PageShape, Param, Statement};
use opsd_store::{
    Backfill, Change, Claimed, Clock, Created, FEED_CAPACITY, Heartbeat, Preconditions, Renewed,
    Result, Store, StoreError,
};
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

pub use config::DatabaseUrl;
/// A pooled connection (see [`connect`]).
pub use deadpool_postgres::Object as Client;
pub use migrations::MIGRATIONS;

use errors::ctx;
use writer::{Job, Write, Written};

/// How many queued writes may wait for the writer before callers wait to enqueue.
const QUEUE_DEPTH: usize = 4096;
/// How long a request waits for a pooled connection before it is answered 503.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The age of the oldest event after a seq, in microseconds by the database's clock.
static FEED_LAG_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} - at FROM events WHERE seq > $1 ORDER BY seq LIMIT 1",
        rows::DB_NOW_MICROS
    )
});
/// Rows read per round when a filter must be re-checked outside the database.
const RECHECK_BATCH: usize = 256;

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
    queue: mpsc::Sender<Job>,
    feed: broadcast::Sender<Change>,
    /// Times the listening connection was lost and re-established.
    gaps: Arc<AtomicU64>,
    conflicts: Arc<writer::Conflicts>,
    /// Shared with the pump: the last event seq it published.
    signals: Arc<pump::Signals>,
    /// The store's epoch, read at open (only a copy into this database changes it).
    epoch: String,
    /// Dropped with the store: stops the listener.
    _stop_listening: tokio::sync::watch::Sender<()>,
}

impl PostgresStore {
    /// Connects, applies migrations and starts the writer task. Fails if the database
    /// cannot be reached now; once running, an unreachable database makes requests
    /// answer 503 until it is back.
    pub async fn open(url: &DatabaseUrl, options: Options) -> Result<Self> {
        let pg = url.session_config(CONNECT_TIMEOUT);
        batch::declare_faults();
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
        let channel = listen::channel(&schema);
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
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
        opsd_store::supervise::task(pump::WORKER, move || {
            pump::run(
                p_pool.clone(),
                pumped.clone(),
                p_signals.clone(),
                p_feed.clone(),
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
            _stop_listening: stop_listening,
        })
    }

    async fn write(&self, write: Write) -> Result<Written> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                write,
                reply,
                span: opsd_store::trace::WriteSpan::current(),
            })
            .await
            .map_err(|_| StoreError::Internal("writer task has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Internal("writer task dropped a write".into()))?
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(errors::pool)
    }
}

/// Starts a read-only transaction that sees one snapshot, so that the reads in it agree
/// with each other.
async fn begin_read(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(ctx("begin read"))
}

async fn end_read(tx: deadpool_postgres::Transaction<'_>) -> Result<()> {
    tx.commit().await.map_err(ctx("end read"))
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

/// `sql` as a prepared statement cached on the connection (one round trip per use
/// instead of two). Only for fixed statement texts: list queries vary with their
/// filters and would grow the cache without bound.
async fn prepared(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
) -> Result<tokio_postgres::Statement> {
    tx.prepare_cached(sql).await.map_err(ctx("prepare"))
}

/// The writer answered a write with the outcome of another kind of write (a bug).
fn mismatched_answer(what: &str) -> StoreError {
    StoreError::Internal(format!("writer answered a {what} with something else"))
}

/// The parameters of a shared statement, as tokio-postgres binds them.
fn bound(statement: &Statement) -> Result<Vec<Box<dyn ToSql + Sync + Send>>> {
    statement
        .params
        .iter()
        .map(|p| -> Result<Box<dyn ToSql + Sync + Send>> {
            match p {
                Param::Text(s) => Ok(Box::new(s.clone())),
                Param::Int(n) => Ok(Box::new(*n)),
                Param::Blob(b) => Ok(Box::new(b.clone())),
                Param::Uuid(id) => Ok(Box::new(*id)),
                // PostgreSQL indexes its times; the shared SQL only asks SQLite for this.
                Param::FirstSeqCreatedFrom(_) => Err(StoreError::Internal(
                    "a SQLite-only parameter in PostgreSQL SQL".into(),
                )),
            }
        })
        .collect()
}

async fn query(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statement,
) -> Result<Vec<tokio_postgres::Row>> {
    let params = bound(st)?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as _).collect();
    tx.query(&st.sql, &refs).await.map_err(ctx("list"))
}

/// Up to `want` operations matching `filter`, walking `sort` in `direction` from strictly
/// after `after`. When the SQL selects a superset (a regular expression checked outside
/// the database), rows are read in rounds and checked until enough match.
async fn scan(
    tx: &tokio_postgres::Transaction<'_>,
    filter: &ListFilter,
    sort: &Sort,
    direction: Direction,
    after: Option<&Position>,
    want: usize,
) -> Result<Vec<Operation>> {
    let statement = |from: Option<&Position>, limit: usize| {
        sql::page_query(
            Dialect::Postgres,
            &rows::OPERATION_COLUMNS,
            filter,
            sort,
            direction,
            from,
            limit,
        )
    };
    let first = statement(after, want);
    if !first.recheck {
        return query(tx, &first)
            .await?
            .iter()
            .map(rows::operation)
            .collect();
    }
    let mut found = Vec::new();
    let mut from = after.cloned();
    loop {
        let st = statement(from.as_ref(), RECHECK_BATCH);
        let rows = query(tx, &st).await?;
        for row in &rows {
            let op = rows::operation(row)?;
            from = Some(sort.position_of(&op));
            if filter.matches(&op) {
                found.push(op);
                if found.len() == want {
                    return Ok(found);
                }
            }
        }
        if rows.len() < RECHECK_BATCH {
            return Ok(found);
        }
    }
}

async fn list_page(
    tx: &tokio_postgres::Transaction<'_>,
    filter: &ListFilter,
    sort: &Sort,
    page: &PageRequest,
) -> Result<Page> {
    let shape = PageShape::new(sort, page);
    let count = sql::count_query(Dialect::Postgres, filter);
    let total = if !page.count_total {
        0
    } else if count.recheck {
        // Counting what a regular expression selects means reading every candidate.
        let all = scan(tx, filter, sort, Direction::Next, None, usize::MAX).await?;
        all.len() as u64
    } else {
        let rows = query(tx, &count).await?;
        let n: i64 = rows
            .first()
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()
            .map_err(ctx("count"))?
            .unwrap_or(0);
        n.unsigned_abs()
    };
    let items = scan(
        tx,
        filter,
        sort,
        shape.direction(),
        shape.after(),
        shape.fetch(),
    )
    .await?;
    let cut = shape.cut(items);
    let beyond = match &cut.probe {
        Some((direction, pos)) => !scan(tx, filter, sort, *direction, Some(pos), 1)
            .await?
            .is_empty(),
        None => false,
    };
    Ok(shape.finish(cut, beyond, total))
}

#[async_trait]
impl Store for PostgresStore {
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
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {} FROM operations WHERE id = $1",
                *rows::OPERATION_COLUMNS
            ))
            .await
            .map_err(ctx("prepare get"))?;
        client
            .query_opt(&statement, &[&id])
            .await
            .map_err(ctx("get operation"))?
            .map(|r| rows::operation(&r))
            .transpose()
    }

    async fn list(&self, filter: &ListFilter, sort: &Sort, page: &PageRequest) -> Result<Page> {
        let mut client = self.client().await?;
        let tx = begin_read(&mut client).await?;
        let page = list_page(&tx, filter, sort, page).await?;
        end_read(tx).await?;
        Ok(page)
    }

    async fn events(&self, id: Uuid) -> Result<Vec<Event>> {
        let mut client = self.client().await?;
        let tx = begin_read(&mut client).await?;
        let Some(op_seq) = tx
            .query_opt("SELECT seq FROM operations WHERE id = $1", &[&id])
            .await
            .map_err(ctx("find operation"))?
            .map(|r| r.get::<_, i64>(0))
        else {
            return Err(StoreError::NotFound(id));
        };
        let events = tx
            .query(
                "SELECT seq, version, status, progress, status_message, at \
                 FROM events WHERE op_seq = $1 ORDER BY seq",
                &[&op_seq],
            )
            .await
            .map_err(ctx("read events"))?
            .iter()
            .map(|r| rows::event(r, id))
            .collect::<Result<Vec<_>>>()?;
        end_read(tx).await?;
        Ok(events)
    }

    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(ctx("ping"))?;
        Ok(())
    }

    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    fn feed_gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
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
        let tx = begin_read(&mut client).await?;
        let backfill = feed::events_since(&tx, project_id, after_seq, limit).await?;
        end_read(tx).await?;
        Ok(backfill)
    }

    async fn stats(
        &self,
        request: &opsd_store::stats::StatsRequest,
    ) -> Result<opsd_store::stats::ProjectStats> {
        let mut client = self.client().await?;
        let tx = begin_read(&mut client).await?;
        let picture = stats::project_stats(&tx, request).await?;
        end_read(tx).await?;
        Ok(picture)
    }

    async fn projects(&self) -> Result<Vec<opsd_store::stats::ProjectCount>> {
        let mut client = self.client().await?;
        let tx = begin_read(&mut client).await?;
        let projects = stats::projects(&tx).await?;
        end_read(tx).await?;
        Ok(projects)
    }

    async fn cancel(&self, id: Uuid) -> Result<Operation> {
        match self.write(Write::Cancel(id)).await? {
            Written::Updated(op) => Ok(op),
            _ => Err(mismatched_answer("cancel")),
        }
    }

    async fn delete_finished(&self, id: Uuid) -> Result<()> {
        match self.write(Write::Delete(id)).await? {
            Written::Purged(_) => Ok(()),
            _ => Err(mismatched_answer("delete")),
        }
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

    async fn expire_leases(&self, limit: usize) -> Result<Vec<Operation>> {
        match self.write(Write::ExpireLeases { limit }).await? {
            Written::Expired(ops) => Ok(ops),
            _ => Err(mismatched_answer("lease expiry")),
        }
    }

    async fn next_lease_expiry(&self) -> Result<Option<OffsetDateTime>> {
        let client = self.client().await?;
        let m: Option<i64> = client
            .query_one(
                "SELECT MIN(lease_expires_at) FROM operations WHERE lease_expires_at IS NOT NULL",
                &[],
            )
            .await
            .map_err(ctx("next lease expiry"))?
            .get(0);
        Ok(m.and_then(rows::from_micros))
    }

    async fn leases_held(&self) -> Result<u64> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM operations WHERE lease_expires_at IS NOT NULL",
                &[],
            )
            .await
            .map_err(ctx("count leases"))?
            .get(0);
        Ok(n.unsigned_abs())
    }

    async fn purge_terminal(&self, before: OffsetDateTime, batch_size: usize) -> Result<u64> {
        match self.write(Write::Purge { before, batch_size }).await? {
            Written::Purged(n) => Ok(n),
            _ => Err(mismatched_answer("purge")),
        }
    }
}
