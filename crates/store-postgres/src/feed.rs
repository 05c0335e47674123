//! The change feed on PostgreSQL, and how it keeps the ordering rule: an event's seq
//! follows commit order.
//!
//! A sequence would not: its values are taken at INSERT and become visible at COMMIT,
//! so with two transactions in flight seq 11 can be visible before seq 10, and a watch
//! that has seen 11 would skip 10 forever. Instead the single `feed_head` row hands out
//! seqs: the first statement of a batch's write flight ([`ADVANCE_SQL`], migrations
//! 0010, 0012 and 0017) locks it, reserves the batch's seqs after `last_event_seq` and moves
//! `stamp` to the batch's time, or gives the batch the head's stamp if another process
//! committed a later one (`writes/restamp.rs`); the lock is held until COMMIT. The next transaction can take it
//! only once this one is committed and visible, so it sees the new head, and seqs (and
//! `created_at`/`updated_at`) follow commit order across every opsd process on the
//! database.
//!
//! The lock is held only from that statement to COMMIT, which travel in one flight
//! (`writes/flight.rs`): for the database's own execution time, never for a client round
//! trip. Everything a batch must read (the rows it changes, locked in `seq` order) was
//! read in the flight before, without the head. Nothing that runs under the head waits
//! for another lock: rows were locked earlier, and the per-project count rows, the
//! idempotency index and the keys are only written under the head.

use std::sync::{Arc, LazyLock};

use deadpool_postgres::Transaction;
use opsd_domain::{Operation, micros};
use opsd_store::{Backfill, Change, FeedChange, Result};
use time::OffsetDateTime;

use crate::errors::ctx;
use crate::row_arrays::{self, EventArrays};
use crate::rows::{self, big};

/// Takes the feed head for the rest of the transaction: `$1` events' seqs are reserved
/// and the head's stamp becomes the batch's time `$2` (microseconds), or stays where it
/// is if another transaction already committed a later one. Answers the last seq before
/// the reserved ones and the stamp the batch gets; every time the batch set to `$2` is
/// written as that stamp by the statements after this one (see `rows::restamped`). With
/// `$3` false (the batch carries over a time equal to `$2`, so a time set "now" cannot
/// be told apart) a later head refuses with a serialization failure instead, and the
/// batch runs again with a new time. One statement (migration 0017): `RETURNING` sees
/// the row as updated, so a given stamp later than `$2` is a head that was later.
pub const ADVANCE_SQL: &str = "UPDATE feed_head h SET last_event_seq = h.last_event_seq + $1::bigint, \
     stamp = GREATEST(h.stamp, $2::bigint) WHERE h.id = 1 \
     RETURNING h.last_event_seq - $1::bigint, h.stamp, \
     CASE WHEN h.stamp > $2::bigint AND NOT $3::boolean \
     THEN opsd_refuse_stamp(h.stamp, $2::bigint) END";

/// Appends the events of `EventArrays::params` (`$2…$16`) with the seqs the flight's
/// [`ADVANCE_SQL`] reserved for `$1` events: the one at place k of the batch (`$16`)
/// gets the head before the batch plus k, read back from the head row this
/// transaction holds. The batch's creations are not among them: each new operation's
/// row stands for its creation event and holds that event's seq
/// (`row_arrays::INSERT_SQL`, migration 0021). An `op_seq` of minus k names the
/// operation the batch creates at place k. `$17` is the batch's time, restamped as
/// `rows::restamped` says.
pub static APPEND_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO events (seq, op_seq, project, version, status, progress, \
         status_message, at, started_at, ended_at, error, warnings, \
         http_error_status_code, http_error_message, cancel_requested) \
         SELECT h.last_event_seq - $1 + u.k, \
         CASE WHEN u.op_seq < 0 THEN h.last_event_seq - $1 - u.op_seq ELSE u.op_seq END, \
         (SELECT n FROM projects WHERE name = u.project_id), u.version, u.status, \
         u.progress, u.status_message, {}, {}, {}, u.error, u.warnings, \
         u.http_error_status_code, u.http_error_message, u.cancel_requested \
         FROM feed_head h, unnest($2::bigint[], $3::text[], $4::bigint[], $5::smallint[], \
         $6::smallint[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], \
         $12::text[], $13::smallint[], $14::text[], $15::boolean[], $16::bigint[]) \
         AS u(op_seq, project_id, version, status, progress, status_message, at, \
         started_at, ended_at, error, warnings, http_error_status_code, http_error_message, \
         cancel_requested, k) WHERE h.id = 1",
        row_arrays::restamped("u.at", "$17::bigint"),
        row_arrays::restamped("u.started_at", "$17::bigint"),
        row_arrays::restamped("u.ended_at", "$17::bigint"),
    )
});

/// Deletes the events of the operations `$1` (ids), raises the feed horizon past the
/// highest one deleted, so a watch resuming from before it re-lists, and counts the
/// deletion (`purges`, migration 0018: the notice carries it to every process, whose
/// caches of reads drop what they hold). A deleted operation is finished, so its
/// highest seq is a stored event's, never its creation's (which its row stands for).
pub const PURGE_EVENTS_SQL: &str = "WITH gone AS (DELETE FROM events WHERE op_seq IN \
     (SELECT seq FROM operations WHERE id = ANY($1::uuid[])) RETURNING seq) \
     UPDATE feed_head SET feed_horizon = GREATEST(feed_horizon, \
     COALESCE((SELECT MAX(seq) FROM gone), 0)), purges = purges + 1 WHERE id = 1";

/// Tells every listening process that the head moved or operations were deleted
/// (delivered at COMMIT, in commit order). It carries `<head> <origin> <purges>`: the new
/// head, the sender's origin `$2`, so that the sender can ignore its own notice, and the
/// count of deleting transactions (`listen.rs`); the changes are read from the store.
pub const NOTIFY_SQL: &str = "SELECT pg_notify($1, (SELECT last_event_seq::text || ' ' || \
     $2::text || ' ' || purges::text FROM feed_head WHERE id = 1))";

/// [`ADVANCE_SQL`] then [`APPEND_SQL`] for `ops` stamped `stamp`, as the writer's flight
/// runs them, one round trip each; for tests that drive the feed protocol by hand inside
/// a transaction they opened. Returns the seq of the last event appended and the stamp
/// the batch got.
pub async fn append(
    tx: &Transaction<'_>,
    ops: &[Operation],
    stamp: OffsetDateTime,
    may_restamp: bool,
) -> Result<(u64, OffsetDateTime)> {
    let n = i64::try_from(ops.len()).unwrap_or(i64::MAX);
    let t0 = micros(stamp);
    let head = tx
        .query_one(ADVANCE_SQL, &[&n, &t0, &may_restamp])
        .await
        .map_err(ctx("advance feed head"))?;
    let (before, given): (i64, i64) = (head.get(0), head.get(1));
    let mut events = EventArrays::default();
    for (place, op) in ops.iter().enumerate() {
        events.push(op, false, place + 1);
    }
    let mut params = events.params();
    params.insert(0, &n);
    params.push(&t0);
    tx.execute(APPEND_SQL.as_str(), &params)
        .await
        .map_err(ctx("append events"))?;
    let given = rows::from_micros(given).unwrap_or(stamp);
    Ok(((before + n).unsigned_abs(), given))
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
            &crate::reads::prepared(
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
            &crate::reads::prepared(tx, &BACKFILL_SQL).await?,
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
/// event: the work per event stays bounded however long the history), in seq order.
/// The creations the rows stand for (migration 0021) are read by the project's
/// `(project, status, seq)` index, one walk per status merged in order, as lists are.
static BACKFILL_SQL: LazyLock<String> = LazyLock::new(|| {
    let project = "(SELECT n FROM projects WHERE name = $1)";
    let creations = opsd_domain::Status::ALL
        .iter()
        .map(|s| {
            format!(
                "(SELECT {}, o.seq, {} FROM operations o WHERE o.project = {project} \
                 AND o.status = {} AND o.seq > $2 AND NOT o.creation_stored \
                 ORDER BY o.seq LIMIT $3)",
                rows::columns_of("o"),
                *rows::CREATION_VERSION_COLUMNS,
                rows::code(*s),
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    format!(
        "(SELECT {}, e.seq, {} FROM events e JOIN operations o ON o.seq = e.op_seq \
         WHERE e.project = {project} AND e.seq > $2 ORDER BY e.seq LIMIT $3) \
         UNION ALL {creations} ORDER BY {} LIMIT $3",
        rows::columns_of("o"),
        *rows::EVENT_VERSION_COLUMNS,
        rows::OPERATION_COLUMN_COUNT + 1,
    )
});

/// Every project's events after seq `$1` and before seq `$3`, in order, at most `$2`
/// (the pump's catch-up): the stored ones and the creations rows stand for, each named
/// by seq, operation id and project name, as the feed carries other processes' changes
/// ([`FeedChange::Named`]). It read whole rows until every replica decoded every
/// other replica's changes a second time for subscribers that mostly need the id. The
/// plan kept is the same index walks (`events_pkey` and `operations_pkey` ranges), then
/// a `projects_pkey` lookup per change.
pub const CATCH_UP_SQL: &str = "SELECT c.seq, c.id, p.name FROM \
     ((SELECT e.seq, o.id, o.project FROM events e JOIN operations o ON o.seq = e.op_seq \
     WHERE e.seq > $1 AND e.seq < $3 ORDER BY e.seq LIMIT $2) \
     UNION ALL (SELECT o.seq, o.id, o.project FROM operations o WHERE o.seq > $1 \
     AND o.seq < $3 AND NOT o.creation_stored ORDER BY o.seq LIMIT $2) \
     ORDER BY 1 LIMIT $2) c JOIN projects p ON p.n = c.project ORDER BY c.seq";

/// The changes with the seqs `$1`, whole, in seq order (the pump's second read, for the
/// projects a watch stream wants whole): `BACKFILL_SQL`'s rows, found by `events_pkey`
/// and `operations_pkey` lookups. A seq deleted since it was named is simply missing.
pub static WHOLE_BY_SEQ_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "(SELECT {}, e.seq, {} FROM events e JOIN operations o ON o.seq = e.op_seq \
         WHERE e.seq = ANY($1::bigint[])) \
         UNION ALL (SELECT {}, o.seq, {} FROM operations o WHERE o.seq = ANY($1::bigint[]) \
         AND NOT o.creation_stored) ORDER BY {}",
        rows::columns_of("o"),
        *rows::EVENT_VERSION_COLUMNS,
        rows::columns_of("o"),
        *rows::CREATION_VERSION_COLUMNS,
        rows::OPERATION_COLUMN_COUNT + 1,
    )
});

/// A change of [`CATCH_UP_SQL`]'s row.
pub fn named(row: &tokio_postgres::Row) -> Result<FeedChange> {
    Ok(FeedChange::Named {
        event_seq: rows::u64_at(row, 0)?,
        id: rows::get(row, 1)?,
        project_id: rows::get(row, 2)?,
    })
}

/// A change read back from a row of `BACKFILL_SQL`: the event's columns laid over its
/// operation's row (`opsd_store::history`).
pub fn change(row: &tokio_postgres::Row) -> Result<Change> {
    let (event_seq, operation) = rows::operation_at_event(row)?;
    Ok(Change {
        event_seq,
        operation: Arc::new(operation),
    })
}
