//! Retention: deletes terminal operations that ended before a cut-off, with their
//! events. One call is one small write on the writer thread (a bounded batch, so it
//! never holds the writer for long); the caller repeats it until nothing is left.
//! Deleting events raises the feed horizon, so a watch that would resume inside the
//! deleted range is told to re-list instead of silently missing changes.

use opsd_domain::{Status, micros};
use opsd_store::sql::codes::Coded;
use rusqlite::{Connection, params};
use time::OffsetDateTime;

use crate::errors::internal;
use crate::feed;
use opsd_store::Result;

/// Deletes up to `batch_size` `done`/`failed` operations whose `ended_at` is before
/// `before`, oldest first, and all their events. Returns how many were deleted.
pub fn purge(conn: &Connection, before: OffsetDateTime, batch_size: usize) -> Result<u64> {
    let ids = conn
        .prepare_cached(
            "SELECT id FROM operations WHERE ended_at IS NOT NULL AND ended_at < ?1 \
             AND status IN (?3, ?4) ORDER BY ended_at, seq LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(
                params![
                    micros(before),
                    i64::try_from(batch_size).unwrap_or(i64::MAX),
                    Status::Done.code(),
                    Status::Failed.code(),
                ],
                |r| r.get::<_, Vec<u8>>(0),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(internal("find expired operations"))?;
    let mut highest_event = 0u64;
    for id in &ids {
        delete_one(conn, id, &mut highest_event).map_err(internal("delete operation"))?;
    }
    if highest_event > 0 {
        feed::raise_horizon(conn, highest_event).map_err(internal("raise feed horizon"))?;
    }
    Ok(ids.len() as u64)
}

/// Deletes finished operation `id` and its events, as [`purge`] does for old ones.
pub fn delete_finished(conn: &Connection, id: uuid::Uuid) -> Result<u64> {
    let status: Option<i64> = conn
        .prepare_cached("SELECT status FROM operations WHERE id = ?1")
        .and_then(|mut s| {
            s.query_map([id.as_bytes().as_slice()], |r| r.get(0))?
                .next()
                .transpose()
        })
        .map_err(internal("read operation status"))?;
    let Some(status) = status else {
        return Err(opsd_store::StoreError::NotFound(id));
    };
    let status = Status::from_code(status)
        .ok_or_else(|| opsd_store::StoreError::Internal(format!("unknown status code {status}")))?;
    opsd_domain::check_deletable(status)?;
    let mut highest_event = 0u64;
    delete_one(conn, id.as_bytes(), &mut highest_event).map_err(internal("delete operation"))?;
    if highest_event > 0 {
        feed::raise_horizon(conn, highest_event).map_err(internal("raise feed horizon"))?;
    }
    Ok(1)
}

fn delete_one(conn: &Connection, id: &[u8], highest_event: &mut u64) -> rusqlite::Result<()> {
    let op_seq: i64 = conn
        .prepare_cached("SELECT seq FROM operations WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    let last: Option<i64> = conn
        .prepare_cached("SELECT MAX(seq) FROM events WHERE op_seq = ?1")?
        .query_row([op_seq], |r| r.get(0))?;
    *highest_event = (*highest_event).max(last.unwrap_or(0).unsigned_abs());
    conn.prepare_cached("DELETE FROM events WHERE op_seq = ?1")?
        .execute([op_seq])?;
    conn.prepare_cached("DELETE FROM operations WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}
