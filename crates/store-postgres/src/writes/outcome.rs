//! When the database stops answering in the middle of a batch: how long the writer waits
//! for each flight, and what it tells its callers when the answer to a COMMIT is lost.
//!
//! - **Deadlines.** Each flight has [`FLIGHT_DEADLINE`]. A database that holds traffic
//!   without resetting the connection (a partition, a black-holing firewall; TCP
//!   acknowledges nothing then, but a middlebox may) would otherwise hold the writer,
//!   and every write queued behind it, until TCP gave up. The deadline is well inside
//!   the default request timeout, so the writer answers before the HTTP layer does.
//! - **A lost answer.** When the write flight (whose last statement is COMMIT) fails on
//!   the connection or misses its deadline, the COMMIT may have been applied. The batch
//!   read its transaction id (`pg_current_xact_id()`) in its first flight; the writer
//!   drops the suspect connection and asks `pg_xact_status` on another one. Committed:
//!   every write is answered as it was decided (and the batch's first event seq and any
//!   key write's result are read back). Aborted: nothing happened, a plain 503. Still
//!   unknown after [`SETTLE_DEADLINE`] (the database unreachable): every write of the
//!   batch is answered [`StoreError::OutcomeUnknown`] (503 `outcome_unknown`), so that
//!   the client reads back or retries idempotently. A committed write is never reported
//!   as failed.
//! - **Fault points** (tests only, `OPSD_FAULT_HOOKS=1`): [`LOSE_COMMIT`] lets the
//!   write flight run to its end and throws its answers away, as a connection lost just
//!   as they were coming back would (the batch committed; opsd must find that out);
//!   [`CUT_AFTER_COMMIT`] sends the flight, COMMIT included, and drops the connection at
//!   once (the server usually aborts the transaction when it cannot send its answers,
//!   but may commit first: either way the answers must say what happened);
//!   [`LOSE_COMMIT_UNKNOWABLE`] is [`LOSE_COMMIT`] with the check failing as if the
//!   database could not be reached.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::Pool;
use opsd_store::StoreError;
use opsd_store::supervise;

use super::Failure;
use super::decide::Decided;
use super::flush::{Flushed, key_answer};
use crate::errors;
use opsd_store::write::Write;

/// The longest the writer waits for one flight of a batch (answers included).
pub const FLIGHT_DEADLINE: Duration = Duration::from_secs(10);
/// The longest the writer spends finding out whether a batch whose answer was lost
/// committed.
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(5);
/// The fault point that loses the answer to a batch's COMMIT.
pub const LOSE_COMMIT: &str = "postgres-writer/lose-commit";
/// The fault point that drops the connection as soon as COMMIT was sent.
pub const CUT_AFTER_COMMIT: &str = "postgres-writer/cut-after-commit";
/// The fault point that loses the answer and makes the outcome unknowable.
pub const LOSE_COMMIT_UNKNOWABLE: &str = "postgres-writer/lose-commit-unknowable";

/// Set by [`LOSE_COMMIT_UNKNOWABLE`]: the next outcome check fails.
static CHECK_FAILS: AtomicBool = AtomicBool::new(false);

/// Makes this process's fault points armable (a no-op unless the hooks are on).
pub fn declare_faults() {
    supervise::declare_fault(LOSE_COMMIT);
    supervise::declare_fault(LOSE_COMMIT_UNKNOWABLE);
    supervise::declare_fault(CUT_AFTER_COMMIT);
}

/// `flight` bounded by [`FLIGHT_DEADLINE`]; missing it is the database being unavailable.
pub async fn bounded<T>(
    what: &str,
    flight: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(FLIGHT_DEADLINE, flight)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Unavailable(StoreError::Unavailable(format!(
                "the database did not answer within {} s ({what})",
                FLIGHT_DEADLINE.as_secs()
            ))))
        })
}

/// The fault points of the write flight: when one is armed, runs `flight` as that
/// fault says and gives up on its answers. `None` when none is armed.
pub async fn lose_answer_if_armed<T>(flight: impl Future<Output = T>) -> Option<Failure> {
    if supervise::take_fault(CUT_AFTER_COMMIT) {
        // Every statement, COMMIT included, leaves on the first poll (`flight.rs`).
        let mut flight = std::pin::pin!(flight);
        std::future::poll_fn(|cx| {
            let _ = flight.as_mut().poll(cx);
            Poll::Ready(())
        })
        .await;
        return Some(Failure::Unavailable(StoreError::Unavailable(
            "fault hook: the connection was cut after COMMIT was sent".into(),
        )));
    }
    let unknowable = supervise::take_fault(LOSE_COMMIT_UNKNOWABLE);
    if !unknowable && !supervise::take_fault(LOSE_COMMIT) {
        return None;
    }
    CHECK_FAILS.store(unknowable, Ordering::Relaxed);
    let _ = flight.await;
    Some(Failure::Unavailable(StoreError::Unavailable(
        "fault hook: the answer to COMMIT was lost".into(),
    )))
}

/// What became of a batch whose write flight failed with `lost` after its COMMIT may
/// have been sent (the caller has dropped that connection): its flight's answers read
/// back if it committed, a plain unavailable error if it did not, `OutcomeUnknown` if
/// that cannot be found out in time.
pub async fn settle(
    pool: &Pool,
    xact: &str,
    d: &Decided<'_>,
    lost: StoreError,
) -> Result<Flushed, Failure> {
    let checked = tokio::time::timeout(SETTLE_DEADLINE, async {
        if CHECK_FAILS.swap(false, Ordering::Relaxed) {
            return Err(StoreError::Unavailable(
                "fault hook: the outcome check could not reach the database".into(),
            ));
        }
        let client = pool.get().await.map_err(errors::pool)?;
        loop {
            let status: Option<String> = client
                .query_one("SELECT pg_xact_status($1::text::xid8)::text", &[&xact])
                .await
                .map_err(errors::ctx("check a batch's outcome"))?
                .get(0);
            match status.as_deref() {
                Some("committed") => return read_back(&client, d).await.map(Some),
                Some("aborted") => return Ok(None),
                // The server has not read the COMMIT (or the end of the dropped
                // connection) yet.
                Some("in progress") => tokio::time::sleep(Duration::from_millis(20)).await,
                other => {
                    return Err(StoreError::Unavailable(format!(
                        "transaction {xact}'s status is {other:?}"
                    )));
                }
            }
        }
    })
    .await;
    match checked {
        Ok(Ok(Some(flushed))) => {
            tracing::warn!(error = %lost, xact, "a batch's COMMIT answer was lost; it committed");
            Ok(flushed)
        }
        Ok(Ok(None)) => Err(Failure::Unavailable(lost)),
        Ok(Err(e)) => Err(unknown(&lost, &e.to_string())),
        Err(_) => Err(unknown(&lost, "the check did not finish in time")),
    }
}

fn unknown(lost: &StoreError, why: &str) -> Failure {
    let detail = format!("{lost}; whether the batch committed is unknown: {why}");
    tracing::warn!(%detail, "answering a batch's writes outcome_unknown");
    Failure::Unavailable(StoreError::OutcomeUnknown(detail))
}

/// What the write flight of a committed batch would have answered: the event seq
/// before the batch's first event, the stamp the batch took (its own time, or a later
/// feed head's), and the result of each key and session write.
async fn read_back(
    client: &deadpool_postgres::Object,
    d: &Decided<'_>,
) -> opsd_store::Result<Flushed> {
    let mut stamp = None;
    let before = match d.events.first() {
        None => 0,
        Some(first) => {
            let row = client
                .query_opt(
                    "SELECT e.seq, e.at FROM events e JOIN operations o ON o.seq = e.op_seq \
                     WHERE o.id = $1 AND e.version = $2 UNION ALL \
                     SELECT seq, created_at FROM operations \
                     WHERE id = $1 AND $2 = 1 AND NOT creation_stored",
                    &[&first.id, &crate::rows::big(first.version)],
                )
                .await
                .map_err(errors::ctx("read back a committed batch's events"))?
                .ok_or_else(|| {
                    StoreError::Unavailable("a committed batch's first event is gone".into())
                })?;
            stamp = crate::rows::from_micros(row.get(1));
            (row.get::<_, i64>(0) - 1).unsigned_abs()
        }
    };
    let mut key_rows = Vec::with_capacity(d.keys.len());
    for write in &d.keys {
        let rows = match write {
            Write::CreateKey { key, .. } => {
                client
                    .query(
                        "SELECT id, created_at FROM api_keys WHERE id = $1",
                        &[&key.id.to_string()],
                    )
                    .await
            }
            Write::RevokeKey(id) => {
                let sql = format!(
                    "SELECT {} FROM api_keys WHERE id = $1",
                    crate::keys::COLUMNS
                );
                client.query(&sql, &[&id.to_string()]).await
            }
            Write::CreateSession { hash, .. } => {
                client
                    .query(
                        "SELECT 1 FROM sessions WHERE secret_hash = $1",
                        &[&hash.to_vec()],
                    )
                    .await
            }
            _ => Ok(Vec::new()),
        }
        .map_err(errors::ctx("read back a committed batch's keys"))?;
        if stamp.is_none() && matches!(write, Write::CreateKey { .. }) {
            // A batch without events: a created key carries the batch's stamp.
            stamp = rows
                .first()
                .and_then(|r| crate::rows::from_micros(r.get(1)));
        }
        key_rows.push(rows);
    }
    // Without events or a created key, nothing the batch answers shows its stamp.
    let stamp = stamp.unwrap_or(d.now);
    let keys = d
        .keys
        .iter()
        .zip(&key_rows)
        .map(|(write, rows)| key_answer(write, rows, stamp))
        .collect();
    Ok(Flushed {
        before,
        stamp,
        keys,
    })
}
