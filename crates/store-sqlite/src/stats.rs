//! The project picture (`Store::stats`) and the project list (`Store::projects`) in SQL.
//! Percentiles are nearest-rank, computed with window functions in one pass per query;
//! every query is bounded by the project and the window through an index.

use opsd_domain::{Status, micros};
use opsd_store::sql::codes::Coded;
use rusqlite::types::Type;
use rusqlite::{Connection, Row, params};
use time::OffsetDateTime;

use crate::rows::{enum_at as parsed, from_micros, uuid_at};
use crate::time_bounds::{self, Stamped};
use opsd_store::stats::{
    ATTENTION_LIMIT, DurationStats, ExpiringLease, MinuteCount, ProjectCount, ProjectStats,
    RUNNING_SCAN, Running, StatsRequest, long_running,
};

const MINUTE_MICROS: i64 = 60_000_000;

fn bad(col: usize, msg: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, msg.to_owned().into())
}

fn time_at(row: &Row, col: usize) -> rusqlite::Result<OffsetDateTime> {
    from_micros(row.get(col)?).ok_or_else(|| bad(col, "time out of range"))
}

fn count_at(row: &Row, col: usize) -> rusqlite::Result<u64> {
    Ok(row.get::<_, i64>(col)?.max(0).unsigned_abs())
}

/// Computes the whole picture in one read transaction, so its parts agree.
pub fn project_stats(conn: &mut Connection, req: &StatsRequest) -> rusqlite::Result<ProjectStats> {
    let tx = conn.transaction()?;
    let since = micros(req.since);
    let now = micros(req.now);

    // Distinct operations per minute by the status each change left them in. The
    // window starts at a seq (`time_bounds`): the project's events index walks from there.
    let first_event = time_bounds::first_seq_from(&tx, Stamped::EventsAt, since)?;
    let mut per_minute = tx
        .prepare_cached(
            "SELECT (at / ?3) * ?3 AS minute, status, COUNT(DISTINCT op_seq) FROM events \
             WHERE project = (SELECT n FROM projects WHERE name = ?1) AND seq >= ?4 \
               AND at >= ?2 GROUP BY minute, status",
        )?
        .query_map(
            params![req.project_id, since, MINUTE_MICROS, first_event],
            |row| {
                Ok(MinuteCount {
                    minute: time_at(row, 0)?,
                    status: parsed(row, 1)?,
                    operations: count_at(row, 2)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // In the order of the names, as every backend answers.
    per_minute.sort_by_key(|m| (m.minute, m.status.as_str()));

    // Run time: from the first `running` (or creation, for one that never ran) to the end.
    let mut durations = tx
        .prepare_cached(
            "WITH d AS ( \
               SELECT kind, type, ended_at - COALESCE(started_at, created_at) AS dur \
               FROM operations \
               WHERE project = (SELECT n FROM projects WHERE name = ?1) AND ended_at >= ?2 \
             ), r AS ( \
               SELECT kind, type, dur, \
                 ROW_NUMBER() OVER (PARTITION BY kind, type ORDER BY dur) AS rn, \
                 COUNT(*) OVER (PARTITION BY kind, type) AS n FROM d \
             ) \
             SELECT kind, type, n, \
               MIN(CASE WHEN rn * 100 >= n * 50 THEN dur END), \
               MIN(CASE WHEN rn * 100 >= n * 95 THEN dur END) \
             FROM r GROUP BY kind, type",
        )?
        .query_map(params![req.project_id, since], |row| {
            Ok(DurationStats {
                kind: parsed(row, 0)?,
                op_type: parsed(row, 1)?,
                finished: count_at(row, 2)?,
                p50_ms: count_at(row, 3)? / 1_000,
                p95_ms: count_at(row, 4)? / 1_000,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    durations.sort_by_key(|d| (d.kind.as_str(), d.op_type.as_str()));

    let running = tx
        .prepare_cached(
            "SELECT id, kind, type, COALESCE(started_at, created_at) AS s FROM operations \
             WHERE project = (SELECT n FROM projects WHERE name = ?1) AND status = ?3 \
             ORDER BY s LIMIT ?2",
        )?
        .query_map(
            params![req.project_id, RUNNING_SCAN as i64, Status::Running.code()],
            |row| {
                Ok(Running {
                    id: uuid_at(row, 0)?,
                    kind: parsed(row, 1)?,
                    op_type: parsed(row, 2)?,
                    started_at: time_at(row, 3)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let long_running = long_running(&durations, running, req.now);

    // Less than half the lease left: a worker heartbeating on time renews well before.
    let expiring_leases = tx
        .prepare_cached(
            "SELECT id, kind, type, lease_worker, lease_expires_at, lease_duration_ms \
             FROM operations WHERE project = (SELECT n FROM projects WHERE name = ?1) \
               AND lease_expires_at IS NOT NULL \
               AND (lease_expires_at - ?2) * 2 < lease_duration_ms * 1000 \
             ORDER BY lease_expires_at LIMIT ?3",
        )?
        .query_map(
            params![req.project_id, now, ATTENTION_LIMIT as i64],
            |row| {
                Ok(ExpiringLease {
                    id: uuid_at(row, 0)?,
                    kind: parsed(row, 1)?,
                    op_type: parsed(row, 2)?,
                    worker: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    expires_at: time_at(row, 4)?,
                    lease_ms: count_at(row, 5)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    Ok(ProjectStats {
        per_minute,
        durations,
        long_running,
        expiring_leases,
    })
}

/// Projects with operations, from the maintained counts (a few rows per project).
pub fn projects(conn: &mut Connection) -> rusqlite::Result<Vec<ProjectCount>> {
    conn.prepare_cached(
        "SELECT p.name, SUM(c.n) AS total FROM operation_counts c \
         JOIN projects p ON p.n = c.project GROUP BY c.project HAVING total > 0 ORDER BY p.name",
    )?
    .query_map([], |row| {
        Ok(ProjectCount {
            project_id: row.get(0)?,
            operations: count_at(row, 1)?,
        })
    })?
    .collect()
}
