//! The change feed of the SQLite backend. The writer records each change as an event
//! carrying what the change can touch (`opsd_store::history`), collects the changes of
//! a batch, and publishes them on a `tokio::sync::broadcast` channel once the batch has
//! committed. Watch streams that resume read the same history back with
//! [`events_since`]: each event's columns laid over its operation's row.

use std::sync::{Arc, LazyLock};

use opsd_domain::Operation;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::broadcast;

use crate::errors::internal;
use crate::rows;
use opsd_store::{Backfill, Change, FeedChange, Result};

/// Key of the feed horizon in `meta`.
pub const HORIZON_KEY: &str = "feed_horizon";

/// Appends the event for `op`'s new version and remembers the change for publishing.
pub fn record(conn: &Connection, op: &Operation, changes: &mut Vec<Change>) -> Result<()> {
    let event_seq = rows::insert_event(conn, op).map_err(internal("insert event"))?;
    changes.push(Change {
        event_seq,
        operation: Arc::new(op.clone()),
    });
    Ok(())
}

/// Publishes a committed batch's changes, in commit order, whole: one process writes
/// them all. Nobody listening is fine.
pub fn publish(feed: &broadcast::Sender<FeedChange>, changes: Vec<Change>) {
    for change in changes {
        let _ = feed.send(FeedChange::Whole(change));
    }
}

/// The feed horizon: events at or below it may be missing.
pub fn horizon(conn: &Connection) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([HORIZON_KEY], |r| r.get(0))
        .optional()?;
    Ok(v.unwrap_or(0).unsigned_abs())
}

/// Raises the feed horizon to `seq` (never lowers it).
pub fn raise_horizon(conn: &Connection, seq: u64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
    )?
    .execute(params![HORIZON_KEY, i64::try_from(seq).unwrap_or(i64::MAX)])?;
    Ok(())
}

/// Up to `limit` of a project's changes after `after_seq`, with horizon and head, in one
/// read transaction so the three agree. Nothing at or below the horizon is returned: it
/// may be incomplete, and a caller resuming from there must re-list anyway.
pub fn events_since(
    conn: &mut Connection,
    project_id: &str,
    after_seq: u64,
    limit: usize,
) -> rusqlite::Result<Backfill> {
    let tx = conn.transaction()?;
    let horizon = horizon(&tx)?;
    // AUTOINCREMENT's counter, not MAX(seq): retention may have deleted the newest events.
    let head: Option<i64> = tx
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'events'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    let changes = tx
        .prepare_cached(&BACKFILL_SQL)?
        .query_map(
            params![
                project_id,
                i64::try_from(after_seq.max(horizon)).unwrap_or(i64::MAX),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            change_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Backfill {
        changes,
        horizon,
        head: head.unwrap_or(0).unsigned_abs(),
    })
}

/// A project's events after a seq, each with its operation's row (one primary-key
/// lookup per event: the work per event stays bounded however long the history).
static BACKFILL_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, e.seq, {} FROM events e JOIN operations o ON o.seq = e.op_seq \
         WHERE e.project = (SELECT n FROM projects WHERE name = ?1) AND e.seq > ?2 \
         ORDER BY e.seq LIMIT ?3",
        rows::columns_of("o"),
        rows::EVENT_VERSION_COLUMNS
    )
});

/// Reads a row of [`BACKFILL_SQL`]: the operation's columns, the event's seq, then the
/// event's version columns.
fn change_from_row(row: &rusqlite::Row) -> rusqlite::Result<Change> {
    let seq: i64 = row.get(rows::OPERATION_COLUMN_COUNT)?;
    Ok(Change {
        event_seq: seq.unsigned_abs(),
        operation: Arc::new(rows::operation_at_event(row)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events written before snapshots existed cannot be replayed: the migration puts
    /// the horizon after them, so a watch resuming from there is told to re-list.
    #[test]
    fn migration_puts_the_horizon_after_events_without_snapshots() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(include_str!("../migrations/0001_operations.sql"))
            .expect("0001");
        for v in 1..=3 {
            conn.execute(
                "INSERT INTO events (operation_id, project_id, version, status, progress, at) \
                 VALUES ('x', 'p', ?1, 'pending', 0, 0)",
                [v],
            )
            .expect("old event");
        }
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL); \
             INSERT INTO schema_migrations VALUES (1, 0);",
        )
        .expect("mark 0001 applied");
        let applied = crate::migrations::migrate(&mut conn).expect("migrate");
        assert!(applied.contains(&2), "{applied:?}");
        let backfill = events_since(&mut conn, "p", 0, 10).expect("events_since");
        assert_eq!((backfill.horizon, backfill.head), (3, 3));
        assert!(backfill.changes.is_empty());
    }
}
