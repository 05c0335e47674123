//! The writer task: group commit on PostgreSQL. One task per process drains a queue and
//! runs every write waiting in it as one batch (`writes/`; when many callers write at
//! once it also waits a moment for those it just answered, `gather.rs`): one
//! transaction, two round trips whatever the batch's size, the feed head held only while
//! the database runs the final flight. Callers hear back only after COMMIT
//! (`synchronous_commit` as the server is configured; on by default), and the committed
//! changes are published on the feed first, in commit order.
//!
//! A batch that another transaction got in the way of (a serialization failure, a
//! deadlock, a unique key taken first) runs again whole: nothing of it was
//! acknowledged, and it decides anew on what is now committed. A batch whose statements
//! fail is split in halves, each committed on its own, until the failing write is alone
//! and answered with its error, so it never fails its batch-mates. A batch that fails
//! because the database is unreachable is answered `Unavailable` (503). If the answer to
//! its COMMIT was lost, the writer asks the database whether it committed and answers
//! accordingly, or `OutcomeUnknown` (503) when it cannot tell (`writes/outcome.rs`); a
//! retry is safe either way — a create with a `request_id` replays, an update with
//! `If-Match` answers 412 if it had applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::Pool;
use opsd_store::trace::BatchSpan;
use opsd_store::write::{Job, Write, Written};
use opsd_store::{Clock, Result, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::gather::{Gather, MAX_BATCH};
use crate::listen::Channel;
use crate::pump::Committed;
use crate::writes::{self, Failure};

/// How often a batch is tried when other transactions keep getting in its way.
const ATTEMPTS: usize = 8;

/// Where committed batches go: the pump (which publishes them on the feed) and, for the
/// other processes on the database, a notification on `channel`.
pub struct Publish {
    pub committed: mpsc::Sender<Committed>,
    pub channel: Channel,
}

/// How often this process's batches met another process's transactions, for
/// `/metrics`: the cost of sharing the database with other replicas.
#[derive(Default)]
pub struct Conflicts {
    /// Attempts run again: a serialization failure, a deadlock, a key taken first.
    pub retried: AtomicU64,
    /// Batches that took a later feed head's stamp instead of their own time.
    pub restamped: AtomicU64,
}

/// The writer's name for supervision, metrics and fault hooks.
pub const WORKER: &str = "postgres-writer";

/// Runs the writer until every sender is dropped. Started again by its supervisor
/// (`opsd_store::supervise`) after a panic, with the same queue; the callers of the
/// batch in flight are answered as unavailable (503), never left without an answer.
pub async fn run(
    pool: Pool,
    queue: opsd_store::supervise::Kept<mpsc::Receiver<Job>>,
    clock: Option<Clock>,
    publish: Arc<Publish>,
    conflicts: Arc<Conflicts>,
) {
    struct InFlight(Vec<Job>);
    impl Drop for InFlight {
        fn drop(&mut self) {
            for job in self.0.drain(..) {
                let restarted = "the writer restarted during this write; retry";
                let _ = job
                    .reply
                    .send(Err(StoreError::Unavailable(restarted.into())));
            }
        }
    }
    let mut queue = queue.take().await;
    let mut batch = InFlight(Vec::with_capacity(MAX_BATCH));
    let mut gather = Gather::default();
    while gather.fill(&mut queue, &mut batch.0).await {
        // A write whose caller gave up while it waited (its request timed out behind a
        // database that stopped answering) is not started: the caller was told 503, and
        // it must not commit behind its back once the database answers again.
        batch.0.retain(|job| !job.reply.is_closed());
        gather.ran(batch.0.len());
        if batch.0.is_empty() {
            continue;
        }
        commit_batch(&pool, &mut batch.0, clock.as_ref(), &publish, &conflicts).await;
    }
}

async fn commit_batch(
    pool: &Pool,
    batch: &mut Vec<Job>,
    clock: Option<&Clock>,
    publish: &Publish,
    conflicts: &Conflicts,
) {
    let span = BatchSpan::start("postgresql", batch.iter().map(|job| &job.span));
    let writes: Vec<&Write> = batch.iter().map(|job| &job.write).collect();
    let mut answers: Vec<Option<Result<Written>>> = writes.iter().map(|_| None).collect();
    let mut changes = Vec::new();
    // Parts of the batch still to commit, the next one last.
    let mut todo = Vec::with_capacity(4);
    todo.push(0..writes.len());
    while let Some(part) = todo.pop() {
        match with_retries(
            pool,
            &writes[part.clone()],
            clock,
            &publish.channel,
            conflicts,
        )
        .await
        {
            Ok(done) => {
                for (slot, answer) in answers[part].iter_mut().zip(done.answers) {
                    *slot = Some(answer);
                }
                changes.extend(done.changes);
            }
            Err(Failure::Statement(e)) if part.len() > 1 => {
                tracing::debug!(error = %e, writes = part.len(), "a write batch failed; splitting it");
                let middle = part.start + part.len() / 2;
                todo.push(middle..part.end);
                todo.push(part.start..middle);
            }
            Err(Failure::Retry(e) | Failure::Unavailable(e) | Failure::Statement(e)) => {
                tracing::warn!(error = %e, writes = part.len(), "write transaction failed");
                span.failed(&e.to_string());
                for slot in &mut answers[part] {
                    *slot = Some(Err(copy(&e)));
                }
            }
        }
    }
    // Published before the callers hear back, so that a waiter is already being woken
    // when the writer's HTTP response leaves.
    if !changes.is_empty() {
        let (published, done) = oneshot::channel();
        let handed = publish
            .committed
            .send(Committed { changes, published })
            .await;
        if handed.is_ok() {
            let _ = done.await;
        }
    }
    for (job, answer) in batch.drain(..).zip(answers) {
        let answer =
            answer.unwrap_or_else(|| Err(StoreError::Internal("a write went unanswered".into())));
        // A caller that went away no longer needs the answer; the write stands.
        let _ = job.reply.send(answer);
    }
}

/// Runs `writes` as one transaction, again while other transactions get in its way. A
/// batch that keeps conflicting is reported as failing (split, if it has several
/// writes; 503 for a single one).
async fn with_retries(
    pool: &Pool,
    writes: &[&Write],
    clock: Option<&Clock>,
    channel: &Channel,
    conflicts: &Conflicts,
) -> std::result::Result<writes::Done, Failure> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = writes::attempt(pool, writes, clock, channel).await;
        match &outcome {
            Ok(done) if done.restamped => {
                conflicts.restamped.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failure::Retry(_)) => {
                conflicts.retried.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        match outcome {
            Err(Failure::Retry(e)) if attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "write batch hit a conflict; retrying");
                if attempt > 2 {
                    tokio::time::sleep(std::time::Duration::from_millis(attempt as u64)).await;
                }
            }
            Err(Failure::Retry(e)) => {
                return Err(Failure::Statement(StoreError::Unavailable(format!(
                    "write kept conflicting with other writers: {e}"
                ))));
            }
            other => return other,
        }
    }
}

/// The same error for every caller of a failed part (503 stays 503, an unknown outcome
/// stays unknown; anything else is a
/// 500 carrying its message).
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::OutcomeUnknown(m) => StoreError::OutcomeUnknown(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
        other => StoreError::Internal(other.to_string()),
    }
}
