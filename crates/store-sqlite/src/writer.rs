//! The single writer. SQLite allows one writer at a time, so instead of many connections
//! fighting over the lock, one thread owns the write connection and drains a queue:
//! every write waiting in the queue joins one `BEGIN IMMEDIATE … COMMIT` (group commit),
//! and one refused write never undoes its neighbours: creates and updates are refused,
//! if at all, before they change anything; every other write runs in a savepoint. A
//! caller hears back only after the COMMIT (with `synchronous=FULL`) returned, so every
//! acknowledged write is on disk.
//!
//! The same thread publishes every committed change on the store's feed (`feed`), after
//! the COMMIT and in commit order, so nobody hears of a change that could still roll
//! back. What each write does inside the transaction is in `writes/`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use opsd_store::rules;
use opsd_store::trace::BatchSpan;
use opsd_store::write::{Job, Written};
use opsd_store::{Clock, FeedChange, Result, StoreError};
use rusqlite::{Connection, TransactionBehavior};
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::checkpoint::Checkpointer;
use crate::{feed, rows, writes};

/// The most writes one transaction takes; bounds the latency of the first in the batch.
const MAX_BATCH: usize = 512;

/// How a batch's answers reach their callers.
///
/// A oneshot sent from this thread wakes its caller's task through the runtime's event
/// fd; the woken worker shares the core and preempts the writer there, so a batch of 60
/// answered one by one cost 60 round trips through the scheduler (`create_durable`
/// profile: a tenth of the core in context switches). Handing the whole batch to the
/// runtime as one task costs one wake-up: its answers are then sent inside the runtime.
pub struct Replies(Option<tokio::runtime::Handle>);

impl Replies {
    /// Through the runtime this is called in, if any (otherwise directly).
    pub fn here() -> Self {
        Self(tokio::runtime::Handle::try_current().ok())
    }

    fn send(&self, answers: Vec<(oneshot::Sender<Result<Written>>, Result<Written>)>) {
        let answer_all = move || {
            for (reply, result) in answers {
                // A caller that went away no longer needs the answer; the write stands.
                let _ = reply.send(result);
            }
        };
        match &self.0 {
            Some(runtime) => drop(runtime.spawn(async move { answer_all() })),
            None => answer_all(),
        }
    }
}

/// The writer's name for supervision, metrics and fault hooks.
pub const WORKER: &str = "sqlite-writer";

/// Whether the last write transaction could write to the disk, for `/readyz`: set by
/// every batch the writer commits or sees fail with an error of the environment.
#[derive(Default)]
pub struct DiskHealth(AtomicU8);

impl DiskHealth {
    const OK: u8 = 0;
    const FULL: u8 = 1;
    const ERROR: u8 = 2;

    /// `"ok"`, `"full"` or `"error"`.
    pub fn get(&self) -> &'static str {
        match self.0.load(Ordering::Relaxed) {
            Self::OK => "ok",
            Self::FULL => "full",
            _ => "error",
        }
    }

    fn set(&self, v: u8) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// What the writer keeps across restarts (`opsd_store::supervise`): its connection,
/// its queue and where it publishes.
pub struct Writer {
    pub conn: Connection,
    pub queue: mpsc::Receiver<Job>,
    pub clock: Clock,
    pub feed: broadcast::Sender<FeedChange>,
    pub checkpointer: Checkpointer,
    pub replies: Replies,
    pub disk: Arc<DiskHealth>,
}

/// Runs the writer loop until every sender is dropped. Called again by its supervisor
/// after a panic: the batch that was in flight is dropped (its callers hear the writer
/// restarted, a 503) and rolled back, the queue and the connection carry on.
pub fn run(w: &mut Writer) {
    yield_to_requests();
    if !w.conn.is_autocommit() {
        // A panic between BEGIN and COMMIT: the transaction's guard rolled back while
        // unwinding, unless that failed too; a transaction left open would refuse
        // every later BEGIN.
        if let Err(e) = w.conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "rolling back the transaction of a panicked batch");
        }
    }
    let mut last_now = last_stamp(&w.conn).unwrap_or_else(|e| {
        // Only a read of two rows; if it fails the first write will fail the same way.
        tracing::error!(error = %e, "reading the last stamp");
        OffsetDateTime::UNIX_EPOCH
    });
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = w.queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match w.queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        opsd_store::supervise::fault_point(WORKER);
        // Timestamps never go backwards, even if the wall clock does, and carry the
        // microsecond precision the store keeps, so a write returns what a read will see.
        last_now = rules::next_stamp((w.clock)(), last_now);
        commit_batch(
            &mut w.conn,
            &mut batch,
            last_now,
            &w.feed,
            &w.replies,
            &w.disk,
        );
        w.checkpointer.after_commit(&w.conn);
    }
}

/// Makes the writer a `SCHED_BATCH` thread: woken by a queued write, it no longer
/// preempts the request handlers on the core they share, but runs when they wait. They
/// keep accepting and queueing writes meanwhile, so batches grow and each commit's fsync
/// is shared by more writes, instead of writer and handlers trading the core per write.
/// Measured with `create_durable`/`transition` (`--quick`, 64 producers, writer and
/// handlers on one core): 0.49 → 0.55 and 0.61 → 0.65 of the storage ceiling. With a core
/// to itself the writer runs at once as before. Best effort: failing only costs that gain.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityOsValue,
            ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
        };
        let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
        // Nice value 0, the default: Linux keeps nice values per thread.
        let nice = ThreadPriority::Os(ThreadPriorityOsValue::default());
        if let Err(e) = set_thread_priority_and_policy(thread_native_id(), nice, batch) {
            tracing::debug!(error = ?e, "the writer stays a normal thread");
        }
    }
}

/// The latest time stamped in the database. Stamps continue from it even when the clock
/// was set back while opsd was stopped: creation order must stay `seq` order, which lists
/// and time bounds rely on (`time_bounds`).
fn last_stamp(conn: &Connection) -> rusqlite::Result<OffsetDateTime> {
    let micros: i64 = conn.query_row(
        "SELECT max(COALESCE((SELECT created_at FROM operations ORDER BY seq DESC LIMIT 1), 0), \
                    COALESCE((SELECT at FROM events ORDER BY seq DESC LIMIT 1), 0))",
        [],
        |r| r.get(0),
    )?;
    Ok(rows::from_micros(micros).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Job>,
    now: OffsetDateTime,
    feed: &broadcast::Sender<FeedChange>,
    replies: &Replies,
    disk: &DiskHealth,
) {
    let span = BatchSpan::start("sqlite", batch.iter().map(|job| &job.span));
    let mut changes = Vec::new();
    let outcome = (|| -> std::result::Result<Vec<Result<Written>>, Abort> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(batch.len());
        for job in batch.iter() {
            let mark = changes.len();
            let guarded = !writes::refuses_before_changing(&job.write);
            if guarded {
                // Prepared once: rusqlite's `Savepoint` parses its SQL on every use.
                tx.prepare_cached("SAVEPOINT write")?.execute([])?;
            }
            let result = writes::apply(&tx, &job.write, now, &mut changes);
            match &result {
                Ok(_) => {}
                Err(_) if guarded => {
                    // Undo this write alone; its changes were never made.
                    tx.prepare_cached("ROLLBACK TO write")?.execute([])?;
                    changes.truncate(mark);
                }
                // A refusal (a rule said no) comes before the write changed anything.
                Err(e) if !is_failure(e) => changes.truncate(mark),
                // A failure may come after a change this write made and cannot undo
                // alone: the whole batch rolls back and every caller hears of it.
                Err(e) => return Err(Abort::Failed(e.to_string(), is_unavailable(e))),
            }
            if guarded {
                tx.prepare_cached("RELEASE write")?.execute([])?;
            }
            results.push(result);
        }
        tx.commit()?;
        Ok(results)
    })();
    match outcome {
        Ok(results) => {
            disk.set(DiskHealth::OK);
            // Published before the callers hear back, so that a waiter is already being
            // woken when the writer's HTTP response leaves.
            feed::publish(feed, changes);
            let answers = batch.drain(..).map(|job| job.reply).zip(results);
            replies.send(answers.collect());
        }
        Err(abort) => {
            tracing::error!(error = %abort, writes = batch.len(), "write transaction failed");
            span.failed(&abort.to_string());
            if let Some(health) = abort.disk_health() {
                disk.set(health);
            }
            let answers = batch
                .drain(..)
                .map(|job| (job.reply, Err(abort.to_store_error())));
            replies.send(answers.collect());
        }
    }
}

/// Why a whole batch rolled back.
enum Abort {
    /// SQLite refused a statement of the transaction itself.
    Sql(rusqlite::Error),
    /// A write without a savepoint failed after it may have changed something: its
    /// message, and whether it was the environment (503) rather than a bug (500).
    Failed(String, bool),
}

impl From<rusqlite::Error> for Abort {
    fn from(e: rusqlite::Error) -> Self {
        Abort::Sql(e)
    }
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abort::Sql(e) => e.fmt(f),
            Abort::Failed(message, _) => f.write_str(message),
        }
    }
}

impl Abort {
    /// What the failure says of the disk, if it is the disk's.
    fn disk_health(&self) -> Option<u8> {
        match self {
            Abort::Sql(e) => match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DiskFull) => Some(DiskHealth::FULL),
                Some(rusqlite::ErrorCode::SystemIoFailure) => Some(DiskHealth::ERROR),
                _ => None,
            },
            Abort::Failed(_, true) => Some(DiskHealth::ERROR),
            Abort::Failed(_, false) => None,
        }
    }

    fn to_store_error(&self) -> StoreError {
        match self {
            Abort::Sql(e) => super::errors::classify("write transaction failed", e),
            Abort::Failed(message, true) => StoreError::Unavailable(message.clone()),
            Abort::Failed(message, false) => StoreError::Internal(message.clone()),
        }
    }
}

/// A failure of the store itself, as opposed to a rule refusing the write.
fn is_failure(e: &StoreError) -> bool {
    matches!(e, StoreError::Internal(_) | StoreError::Unavailable(_))
}

fn is_unavailable(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_))
}
