//! One batch of writes, in one transaction of two round trips whatever its size:
//!
//! 1. `load`: open the transaction and read every row the batch touches (locking those
//!    it changes), the operation seqs for its creates and the time, in one flight;
//! 2. `decide`: decide every write in Rust with the shared rules (`opsd_store::rules`);
//! 3. `flush`: write every row, event, lease and count with set-based statements and
//!    COMMIT, in one flight that takes the feed head first (`feed.rs`).
//!
//! Each flight has a deadline, and a write flight whose answer is lost is settled by
//! asking the database whether the transaction committed (`outcome.rs`).
//!
//! The feed head is held only during the second flight, which the database runs without
//! waiting for the client; so neither the distance to the database nor another replica's
//! round trips hold up anyone's writes.

mod decide;
pub(crate) mod flight;
mod flush;
mod load;
mod outcome;
mod restamp;

pub use outcome::declare_faults;

use std::sync::Arc;

use deadpool_postgres::Pool;
use opsd_domain::Operation;
use opsd_store::{Change, Clock, Result, StoreError};
use tokio_postgres::error::SqlState;

use crate::errors;
use crate::listen::Channel;
use decide::Answer;
use opsd_store::write::{Write, Written};

/// Why an attempt at a batch failed.
pub enum Failure {
    /// Another transaction got in the way (a serialization failure, including a feed
    /// head already stamped later than this batch; a deadlock; a unique key another
    /// replica took first): the batch can run again as it is, and decides anew.
    Retry(StoreError),
    /// The environment (the database unreachable, restarting, out of disk): nothing was
    /// committed, or the outcome of the COMMIT is unknown; callers get 503.
    Unavailable(StoreError),
    /// A statement failed: some write of the batch is at fault.
    Statement(StoreError),
}

impl Failure {
    /// Classifies a database error met while doing `context`.
    pub fn of(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Failure {
        move |e| {
            let taken = e.code() == Some(&SqlState::UNIQUE_VIOLATION);
            if errors::is_retryable_conflict(&e) || taken {
                Failure::Retry(errors::db(context, e))
            } else {
                Failure::from(errors::db(context, e))
            }
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Failure::Unavailable(e),
            other => Failure::Statement(other),
        }
    }
}

/// A committed batch: an answer per write and the changes to publish, in seq order.
pub struct Done {
    pub answers: Vec<Result<Written>>,
    pub changes: Vec<Change>,
    /// Whether the batch took a later feed head's stamp instead of its own time.
    pub restamped: bool,
}

/// One attempt at `writes` in one transaction.
pub async fn attempt(
    pool: &Pool,
    writes: &[&Write],
    clock: Option<&Clock>,
    channel: &Channel,
) -> std::result::Result<Done, Failure> {
    let client = pool.get().await.map_err(errors::pool)?;
    match run(&client, writes, clock, channel).await {
        Ok(Ran::Answered(decided, flushed)) => Ok(finish(decided, flushed)),
        Ok(Ran::AnswerLost {
            decided,
            xact,
            lost,
        }) => {
            // Whatever that connection still has to say is stale: never reuse it.
            drop(deadpool_postgres::Object::take(client));
            let flushed = outcome::settle(pool, &xact, &decided, lost).await?;
            Ok(finish(decided, flushed))
        }
        Err(failure) => {
            // Ends a transaction a failed read left open (after a failed write flight
            // the COMMIT already rolled back, and this is a no-op). A connection that
            // is gone fails here, and the pool drops it; one that does not answer in
            // time is dropped here.
            let rollback = client.batch_execute("ROLLBACK");
            if !matches!(
                tokio::time::timeout(ROLLBACK_DEADLINE, rollback).await,
                Ok(Ok(()))
            ) {
                drop(deadpool_postgres::Object::take(client));
            }
            Err(failure)
        }
    }
}

/// How long ending a failed batch's transaction may take before its connection is
/// dropped instead.
const ROLLBACK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// How a batch's transaction ended, as far as its connection knows.
enum Ran<'w> {
    /// Every flight answered: the batch committed (or, writing nothing, rolled back).
    Answered(decide::Decided<'w>, flush::Flushed),
    /// The write flight (COMMIT included) may have reached the database, but its
    /// answer did not come back: `outcome.rs` finds out what happened.
    AnswerLost {
        decided: decide::Decided<'w>,
        /// The transaction's id (`pg_current_xact_id()`).
        xact: String,
        lost: StoreError,
    },
}

async fn run<'w>(
    client: &deadpool_postgres::ClientWrapper,
    writes: &[&'w Write],
    clock: Option<&Clock>,
    channel: &Channel,
) -> std::result::Result<Ran<'w>, Failure> {
    let (loaded, xact) =
        outcome::bounded("read the batch's rows", load::load(client, writes, clock)).await?;
    let decided = decide::decide(writes, loaded)?;
    if decided.is_read_only() {
        // Refusals and replays only: nothing to write, and the row locks to release.
        outcome::bounded("end a batch that wrote nothing", async {
            client
                .batch_execute("ROLLBACK")
                .await
                .map_err(Failure::of("end a batch that wrote nothing"))
        })
        .await?;
        let flushed = flush::Flushed {
            before: 0,
            stamp: decided.now,
            keys: Vec::new(),
        };
        return Ok(Ran::Answered(decided, flushed));
    }
    match outcome::bounded("write the batch", flush::flush(client, &decided, channel)).await {
        Ok(flushed) => Ok(Ran::Answered(decided, flushed)),
        Err(Failure::Unavailable(lost)) => Ok(Ran::AnswerLost {
            decided,
            xact,
            lost,
        }),
        Err(other) => Err(other),
    }
}

/// Every write's answer, and the batch's changes numbered from the seq before them,
/// as the write flight stored them: an operation the batch created gets its creation
/// event's seq (`decide` gave it the event's place in the batch), and the times set to
/// the batch's own time take the feed head's stamp if that was later (`restamp.rs`).
fn finish(mut decided: decide::Decided<'_>, flushed: flush::Flushed) -> Done {
    let (t0, stamp, before) = (decided.now, flushed.stamp, flushed.before);
    let answers = std::mem::take(&mut decided.answers);
    let events = std::mem::take(&mut decided.events);
    let restamped = stamp != t0;
    let settle = |op: &mut Operation| {
        if decided.is_new(op.id) {
            op.seq += before;
        }
        if restamped {
            restamp::operation(op, t0, stamp);
        }
    };
    let mut keys = flushed.keys.into_iter();
    let answers: Vec<_> = answers
        .into_iter()
        .map(|answer| match answer {
            Answer::Ready(result) => {
                let mut result = *result;
                each_operation(&mut result, settle);
                result
            }
            Answer::Key => keys.next().unwrap_or(Err(StoreError::Internal(
                "a key write went unanswered".into(),
            ))),
        })
        .collect();
    let changes: Vec<_> = events
        .into_iter()
        .zip(before + 1..)
        .map(|(mut operation, event_seq)| {
            if restamped || decided.is_new(operation.id) {
                settle(Arc::make_mut(&mut operation));
            }
            Change {
                event_seq,
                operation,
            }
        })
        .collect();
    Done {
        answers,
        changes,
        restamped,
    }
}

/// Applies `f` to every operation an answer carries (keys and sessions carry none: they
/// are answered from the flight, stamped by the head already).
fn each_operation(answer: &mut Result<Written>, mut f: impl FnMut(&mut Operation)) {
    let Ok(written) = answer else { return };
    match written {
        Written::Created(c) => f(&mut c.operation),
        Written::Updated(op) => f(op),
        Written::Claimed(Some(c)) => f(&mut c.operation),
        Written::Renewed(r) => f(&mut r.operation),
        Written::Expired(ops) => ops.iter_mut().for_each(f),
        Written::Claimed(None) | Written::Key(_) | Written::Purged(_) | Written::Done => {}
    }
}
