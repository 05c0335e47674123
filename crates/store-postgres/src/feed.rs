//! The change feed on PostgreSQL, and how it keeps the ordering rule: an event's seq
//! follows commit order.
//!
//! A sequence would not: its values are taken at INSERT and become visible at COMMIT,
//! so with two transactions in flight seq 11 can be visible before seq 10, and a watch
//! that has seen 11 would skip 10 forever. Instead every write transaction first locks
//! the single `feed_head` row ([`lock_head`]) and holds it until COMMIT. While it holds
//! it, it assigns event seqs after `last_event_seq` and stamps its writes with one time
//! (never earlier than the previous stamp); [`store_head`] writes both back just before
//! COMMIT. The next transaction can take the lock only once this one is committed and
//! visible, so it sees the new head, and seqs (and `created_at`/`updated_at`) follow
//! commit order across every opsd process on the database. The cost is that writes to
//! one database are serialised; the writer (`writer.rs`) batches concurrent writes
//! into one transaction so that they share the lock and the commit.

use std::sync::{Arc, LazyLock};

use deadpool_postgres::Transaction;
use opsd_domain::{Operation, micros};
use opsd_store::{Backfill, Change, Clock, Result, history, rules};
use time::OffsetDateTime;

use crate::errors::ctx;
use crate::rows::{self, big, from_micros};

/// The feed head as a write transaction holds it.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// The last event seq assigned (by this transaction, once it appended events).
    pub last_event_seq: u64,
    /// The time this transaction stamps on what it writes.
    pub now: OffsetDateTime,
}

/// Locks the feed head for the rest of `tx` and decides the transaction's time: the
/// test clock if one is given, else the database server's clock (one clock for every
/// process), never earlier than the previous transaction's.
pub async fn lock_head(tx: &Transaction<'_>, clock: Option<&Clock>) -> Result<Head> {
    let row = tx
        .query_one(
            &crate::prepared(
                tx,
                "SELECT last_event_seq, stamp, \
             floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint \
             FROM feed_head WHERE id = 1 FOR UPDATE",
            )
            .await?,
            &[],
        )
        .await
        .map_err(ctx("lock feed head"))?;
    let last: i64 = row.get(0);
    let previous = from_micros(row.get(1)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let db_now = from_micros(row.get(2)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let clock_now = clock.map_or(db_now, |c| c());
    Ok(Head {
        last_event_seq: last.unsigned_abs(),
        now: rules::next_stamp(clock_now, previous),
    })
}

/// Writes the head back (the seqs assigned and the stamp used); call just before COMMIT.
pub async fn store_head(tx: &Transaction<'_>, head: &Head) -> Result<()> {
    tx.execute(
        &crate::prepared(
            tx,
            "UPDATE feed_head SET last_event_seq = $1, stamp = $2 WHERE id = 1",
        )
        .await?,
        &[&big(head.last_event_seq), &micros(head.now)],
    )
    .await
    .map_err(ctx("store feed head"))?;
    Ok(())
}

/// Appends the event for `op`'s new version (seq after the head) and remembers the
/// change for publishing after COMMIT.
pub async fn record(
    tx: &Transaction<'_>,
    head: &mut Head,
    op: &Operation,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let seq = head.last_event_seq + 1;
    tx.execute(
        &crate::prepared(
            tx,
            "INSERT INTO events (seq, op_seq, project_id, version, status, progress, \
         status_message, at, started_at, ended_at, error, warnings, http_error_status_code, \
         http_error_message, cancel_requested) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $14, $15)",
        )
        .await?,
        &[
            &big(seq),
            &big(op.seq),
            &op.project_id,
            &big(op.version),
            &op.status.as_str(),
            &i64::from(op.progress),
            &op.status_message,
            &micros(op.updated_at),
            &op.started_at.map(micros),
            &op.ended_at.map(micros),
            &history::error_column(op.error.as_ref()),
            &history::warnings_column(&op.warnings),
            &op.http_error_status_code.map(i64::from),
            &op.http_error_message,
            &op.cancel_requested,
        ],
    )
    .await
    .map_err(ctx("insert event"))?;
    head.last_event_seq = seq;
    changes.push(Change {
        event_seq: seq,
        operation: Arc::new(op.clone()),
    });
    Ok(())
}

/// Raises the feed horizon to `seq` (never lowers it).
pub async fn raise_horizon(tx: &Transaction<'_>, seq: u64) -> Result<()> {
    tx.execute(
        &crate::prepared(
            tx,
            "UPDATE feed_head SET feed_horizon = GREATEST(feed_horizon, $1) WHERE id = 1",
        )
        .await?,
        &[&big(seq)],
    )
    .await
    .map_err(ctx("raise feed horizon"))?;
    Ok(())
}

/// Up to `limit` of a project's changes after `after_seq`, with horizon and head, read in
/// one snapshot so the three agree. Nothing at or below the horizon is returned.
pub async fn events_since(
    tx: &Transaction<'_>,
    project_id: &str,
    after_seq: u64,
    limit: usize,
) -> Result<Backfill> {
    let head = tx
        .query_one(
            &crate::prepared(
                tx,
                "SELECT last_event_seq, feed_horizon FROM feed_head WHERE id = 1",
            )
            .await?,
            &[],
        )
        .await
        .map_err(ctx("read feed head"))?;
    let (head, horizon): (i64, i64) = (head.get(0), head.get(1));
    let horizon = horizon.unsigned_abs();
    let rows = tx
        .query(
            &crate::prepared(tx, &BACKFILL_SQL).await?,
            &[
                &project_id,
                &big(after_seq.max(horizon)),
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(ctx("read events"))?;
    let changes = rows.iter().map(change).collect::<Result<Vec<_>>>()?;
    Ok(Backfill {
        changes,
        horizon,
        head: head.unsigned_abs(),
    })
}

/// A project's events after a seq, each with its operation's row (one index lookup per
/// event: the work per event stays bounded however long the history).
static BACKFILL_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, e.seq, {} FROM events e JOIN operations o ON o.seq = e.op_seq \
         WHERE e.project_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3",
        rows::columns_of("o"),
        rows::EVENT_VERSION_COLUMNS
    )
});

/// Every project's events after a seq, in order (the pump's catch-up).
pub static CATCH_UP_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, e.seq, {} FROM events e JOIN operations o ON o.seq = e.op_seq \
         WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
        rows::columns_of("o"),
        rows::EVENT_VERSION_COLUMNS
    )
});

/// A change read back from a row of [`BACKFILL_SQL`] or [`CATCH_UP_SQL`]: the
/// event's columns laid over its operation's row (`opsd_store::history`).
pub fn change(row: &tokio_postgres::Row) -> Result<Change> {
    let (event_seq, operation) = rows::operation_at_event(row)?;
    Ok(Change {
        event_seq,
        operation: Arc::new(operation),
    })
}
