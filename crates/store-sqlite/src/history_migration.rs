//! Migration 0007's data step (ARCHITECTURE.md, "History encoding"): converts the events
//! of a database made before compact history, each with a JSON snapshot of the whole
//! operation, into rows that keep only what a change can touch. Runs inside the
//! migration's transaction, after `0007_compact_history.sql` made `events_compact`.

use opsd_domain::micros;
use opsd_store::history;
use rusqlite::{Connection, params};

use crate::feed;

/// Swaps the filled table in. The AUTOINCREMENT counter moves over first: it is the
/// watch head, and retention may have deleted the newest events.
const SWAP: &str = "
DELETE FROM sqlite_sequence WHERE name = 'events_compact';
INSERT INTO sqlite_sequence (name, seq) SELECT 'events_compact', seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_compact RENAME TO events;
-- The events list and retention: one operation's events in order.
CREATE INDEX events_operation ON events (op_seq, seq);
-- Watch backfill: one project's events in commit order.
CREATE INDEX events_project ON events (project_id, seq);
-- Operations per minute by status (stats).
CREATE INDEX events_project_at ON events (project_id, at);
";

/// Copies every event into `events_compact`, then swaps it in.
pub fn convert(conn: &Connection) -> rusqlite::Result<()> {
    let mut read = conn.prepare(
        "SELECT e.seq, o.seq, e.project_id, e.version, e.status, e.progress, e.status_message, \
         e.at, e.snapshot FROM events e JOIN operations o ON o.id = e.operation_id",
    )?;
    let mut insert = conn.prepare(
        "INSERT INTO events_compact (seq, op_seq, project_id, version, status, progress, \
         status_message, at, started_at, ended_at, error, warnings, http_error_status_code, \
         http_error_message, cancel_requested) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        // Events from before snapshots existed lie at or below the feed horizon and are
        // never replayed; they keep the columns they had.
        let version = row
            .get::<_, Option<String>>(8)?
            .map(|s| history::from_snapshot(&s))
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    8,
                    rusqlite::types::Type::Text,
                    format!("event {seq}: {e}").into(),
                )
            })?;
        let v = version.as_ref();
        insert.execute(params![
            seq,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, Option<String>>(6)?,
            row.get::<_, i64>(7)?,
            v.and_then(|v| v.started_at).map(micros),
            v.and_then(|v| v.ended_at).map(micros),
            v.and_then(|v| history::error_column(v.error.as_ref())),
            v.and_then(|v| history::warnings_column(&v.warnings)),
            v.and_then(|v| v.http_error_status_code),
            v.and_then(|v| v.http_error_message.clone()),
            v.is_some_and(|v| v.cancel_requested),
        ])?;
    }
    // An event whose operation is gone (never written by opsd, which deletes both
    // together) cannot be rebuilt: the horizon moves above it, so a watch resuming from
    // before it re-lists instead of missing it.
    let orphan: Option<i64> = conn.query_row(
        "SELECT MAX(seq) FROM events WHERE operation_id NOT IN (SELECT id FROM operations)",
        [],
        |r| r.get(0),
    )?;
    if let Some(orphan) = orphan {
        feed::raise_horizon(conn, orphan.unsigned_abs())?;
    }
    conn.execute_batch(SWAP)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// The AUTOINCREMENT counter is the watch head: when retention deleted the newest
    /// events it is above every stored seq, and the conversion must keep it there so a
    /// new event never reuses a seq a watcher has already seen.
    #[test]
    fn conversion_keeps_the_event_counter_above_deleted_events() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .expect("schema_migrations");
        for &(version, sql) in crate::migrations::MIGRATIONS.iter().filter(|m| m.0 <= 6) {
            conn.execute_batch(sql).expect("old migration");
            conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version])
                .expect("mark applied");
        }
        conn.execute_batch(
            "INSERT INTO operations (id, project_id, kind, type, resource_id, status, progress, \
             details, warnings, created_at, updated_at, version) \
             VALUES ('0192a7f0-0000-7000-8000-000000000001', 'p', 'vm', 'create', 'vm-1', 'pending', \
             0, '{}', '[]', 0, 0, 1); \
             INSERT INTO events (operation_id, project_id, version, status, progress, at) \
             VALUES ('0192a7f0-0000-7000-8000-000000000001', 'p', 1, 'pending', 0, 0), \
             ('gone', 'p', 1, 'pending', 0, 0), \
             ('gone', 'p', 2, 'done', 100, 0); \
             DELETE FROM events WHERE operation_id = 'gone';",
        )
        .expect("old rows");
        let applied = crate::migrations::migrate(&mut conn).expect("migrate");
        assert_eq!(applied[0], 7);
        let head: i64 = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .expect("head");
        assert_eq!(head, 3);
        conn.execute(
            "INSERT INTO events (op_seq, project, version, status, progress, at) \
             VALUES (1, 1, 2, 1, 0, 1)",
            [],
        )
        .expect("new event");
        assert_eq!(conn.last_insert_rowid(), 4);
        let kept: i64 = conn
            .query_row("SELECT op_seq FROM events WHERE seq = 1", [], |r| r.get(0))
            .expect("converted event");
        assert_eq!(kept, 1);
    }
}
