//! The writer task: group commit on PostgreSQL. Write transactions on one database are
//! serialised by the feed head lock (`feed.rs`), so instead of one transaction per
//! request, one task per process drains a queue and runs every write waiting in it in
//! one transaction, each inside its own savepoint so a refused write never undoes its
//! neighbours. Callers hear back only after COMMIT (`synchronous_commit` as the server
//! is configured; on by default), and the committed changes are published on the feed
//! first, in commit order.
//!
//! A batch the database aborts as a serialization failure or deadlock is retried whole
//! (nothing of it was acknowledged). A batch that fails because the database is
//! unreachable is answered `Unavailable` (503): if the COMMIT itself was lost on the
//! way, the outcome is unknown to the caller, whose retry is safe — a create with a
//! `request_id` replays, an update with `If-Match` answers 412 if it had applied.

use deadpool_postgres::Pool;
use opsd_domain::lease::ClaimRequest;
use opsd_domain::{ApiKey, NewOperation, Patch};
use opsd_store::{Change, Clock, Heartbeat, Preconditions, Result, StoreError};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::errors;
use crate::feed;
use crate::pump::Committed;
use crate::writes::{self, Batch};

/// The most writes one transaction takes; bounds the latency of the first in the batch.
const MAX_BATCH: usize = 512;
/// How often a batch aborted by a conflict is tried again.
const CONFLICT_RETRIES: usize = 3;

/// A write waiting for the writer.
pub enum Write {
    Create(NewOperation),
    Update {
        id: Uuid,
        patch: Patch,
        pre: Preconditions,
    },
    Claim(ClaimRequest),
    Heartbeat {
        id: Uuid,
        heartbeat: Heartbeat,
    },
    ExpireLeases {
        limit: usize,
    },
    Purge {
        before: OffsetDateTime,
        batch_size: usize,
    },
    CreateKey {
        key: ApiKey,
        hash: [u8; 32],
        /// Only if no key was ever created (the first admin key).
        only_first: bool,
    },
    RevokeKey(Uuid),
    Cancel(Uuid),
}

/// What a write produced.
pub enum Written {
    Created(opsd_store::Created),
    Updated(opsd_domain::Operation),
    Key(Option<ApiKey>),
    Claimed(Option<opsd_store::Claimed>),
    Renewed(opsd_store::Renewed),
    Expired(Vec<opsd_domain::Operation>),
    Purged(u64),
}

/// A queued write and where to send its outcome.
pub struct Job {
    pub write: Write,
    pub reply: oneshot::Sender<Result<Written>>,
}

/// Where committed batches go: the pump (which publishes them on the feed) and, for the
/// other processes on the database, a notification on `channel`.
pub struct Publish {
    pub committed: mpsc::Sender<Committed>,
    pub channel: String,
}

/// Runs the writer until every sender is dropped.
pub async fn run(
    pool: Pool,
    mut queue: mpsc::Receiver<Job>,
    clock: Option<Clock>,
    publish: Publish,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&pool, &mut batch, clock.as_ref(), &publish).await;
    }
}

/// Why a batch transaction failed as a whole.
enum BatchError {
    /// The database chose it as a conflict victim: run it again.
    Conflict(StoreError),
    /// Anything else: answer every caller with it.
    Failed(StoreError),
}

impl BatchError {
    fn of(context: &'static str) -> impl Fn(tokio_postgres::Error) -> BatchError {
        move |e| {
            if errors::is_retryable_conflict(&e) {
                BatchError::Conflict(errors::db(context, e))
            } else {
                BatchError::Failed(errors::db(context, e))
            }
        }
    }
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        BatchError::Failed(e)
    }
}

async fn commit_batch(pool: &Pool, batch: &mut Vec<Job>, clock: Option<&Clock>, publish: &Publish) {
    let mut attempt = 0;
    let outcome = loop {
        attempt += 1;
        match try_batch(pool, batch, clock, &publish.channel).await {
            Err(BatchError::Conflict(e)) if attempt < CONFLICT_RETRIES => {
                tracing::debug!(error = %e, attempt, "write batch hit a conflict; retrying");
            }
            Err(BatchError::Conflict(e) | BatchError::Failed(e)) => break Err(e),
            Ok(done) => break Ok(done),
        }
    };
    match outcome {
        Ok((results, changes)) => {
            // Published before the callers hear back, so that a waiter is already being
            // woken when the writer's HTTP response leaves.
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
            for (job, result) in batch.drain(..).zip(results) {
                // A caller that went away no longer needs the answer; the write stands.
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, writes = batch.len(), "write transaction failed");
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(match &e {
                    StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                    other => StoreError::Internal(other.to_string()),
                }));
            }
        }
    }
}

type BatchOutcome = (Vec<Result<Written>>, Vec<Change>);

async fn try_batch(
    pool: &Pool,
    batch: &[Job],
    clock: Option<&Clock>,
    channel: &str,
) -> std::result::Result<BatchOutcome, BatchError> {
    let mut client = pool.get().await.map_err(errors::pool)?;
    let mut tx = client
        .transaction()
        .await
        .map_err(BatchError::of("begin"))?;
    let mut head = feed::lock_head(&tx, clock).await?;
    let mut changes = Vec::new();
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let (mark, head_before) = (changes.len(), head);
        let sp = tx
            .savepoint("write")
            .await
            .map_err(BatchError::of("savepoint"))?;
        let mut b = Batch {
            head: &mut head,
            changes: &mut changes,
        };
        let result = apply(&sp, &mut b, &job.write).await;
        match &result {
            Ok(_) => sp
                .commit()
                .await
                .map_err(BatchError::of("release savepoint"))?,
            // The connection is gone: nothing of the batch can commit.
            Err(StoreError::Unavailable(m)) => {
                return Err(BatchError::Failed(StoreError::Unavailable(m.clone())));
            }
            Err(_) => {
                // Rolling back to the savepoint undoes this write alone; its changes
                // and event seqs were never made.
                sp.rollback()
                    .await
                    .map_err(BatchError::of("roll back savepoint"))?;
                changes.truncate(mark);
                head = head_before;
            }
        }
        results.push(result);
    }
    feed::store_head(&tx, &head).await?;
    if !changes.is_empty() {
        // Delivered to every listening process at COMMIT, in commit order; it carries
        // only the new head (the changes are read from the store).
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&channel, &head.last_event_seq.to_string()],
        )
        .await
        .map_err(BatchError::of("notify"))?;
    }
    tx.commit().await.map_err(BatchError::of("commit"))?;
    Ok((results, changes))
}

async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    b: &mut Batch<'_>,
    write: &Write,
) -> Result<Written> {
    let now = b.head.now;
    match write {
        Write::Create(new) => writes::create(tx, b, new).await.map(Written::Created),
        Write::Update { id, patch, pre } => writes::update(tx, b, *id, patch, pre)
            .await
            .map(Written::Updated),
        Write::Claim(request) => writes::claim(tx, b, request).await.map(Written::Claimed),
        Write::Heartbeat { id, heartbeat } => writes::heartbeat(tx, b, *id, heartbeat)
            .await
            .map(Written::Renewed),
        Write::ExpireLeases { limit } => writes::expire(tx, b, *limit).await.map(Written::Expired),
        Write::Purge { before, batch_size } => writes::purge(tx, *before, *batch_size)
            .await
            .map(Written::Purged),
        Write::CreateKey {
            key,
            hash,
            only_first,
        } => writes::create_key(tx, now, key, hash, *only_first)
            .await
            .map(Written::Key),
        Write::Cancel(id) => writes::cancel(tx, b, *id).await.map(Written::Updated),
        Write::RevokeKey(id) => writes::revoke_key(tx, now, *id)
            .await
            .map(|k| Written::Key(Some(k))),
    }
}
