//! The project picture (`Store::stats`) and the project list (`Store::projects`) on
//! PostgreSQL: the same queries as SQLite's (nearest-rank percentiles with window
//! functions, each bounded by the project and the window through an index), read in one
//! snapshot; which running operations count as "longer than usual" is the shared rule
//! `opsd_store::stats::long_running`.

use std::sync::LazyLock;

use opsd_domain::{Status, micros};
use opsd_store::stats::{
    ATTENTION_LIMIT, DurationStats, ExpiringLease, MinuteCount, ProjectCount, ProjectStats,
    RUNNING_SCAN, Running, StatsRequest, long_running,
};
use opsd_store::{Result, StoreError};
use tokio_postgres::{Row, Transaction};

use crate::errors::ctx;
use crate::rows::{code, code_at, creation_column, from_micros, uuid_at};

const MINUTE_MICROS: i64 = 60_000_000;

/// Operations per minute and status in project `$1` since `$2`, by the minute (`$3`) of
/// each event, stored or a creation its row stands for. Creations are walked by
/// `(project, status, seq)`, which names every status so that the index gives each one's
/// `seq` range.
static PER_MINUTE_SQL: LazyLock<String> = LazyLock::new(|| {
    let statuses: Vec<String> = Status::ALL.iter().map(|s| code(*s).to_string()).collect();
    format!(
        "SELECT (at / $3) * $3 AS minute, status, COUNT(DISTINCT op_seq) FROM ( \
           SELECT at, status, op_seq FROM events \
           WHERE project = (SELECT n FROM projects WHERE name = $1) \
           AND seq >= (SELECT opsd_first_event_at($2)) AND at >= $2 \
           UNION ALL \
           SELECT {} FROM operations o \
           WHERE o.project = (SELECT n FROM projects WHERE name = $1) \
           AND o.status IN ({}) AND o.seq >= (SELECT opsd_first_seq_created($2)) \
           AND o.created_at >= $2 AND NOT o.creation_stored \
         ) AS window_events GROUP BY minute, status ORDER BY minute, status",
        ["at", "status", "op_seq"].map(creation_column).join(", "),
        statuses.join(", ")
    )
});

fn bad(what: &str) -> StoreError {
    StoreError::Internal(format!("stats: {what}"))
}

fn time_at(row: &Row, col: usize) -> Result<time::OffsetDateTime> {
    from_micros(row.get(col)).ok_or_else(|| bad("time out of range"))
}

fn count_at(row: &Row, col: usize) -> u64 {
    row.get::<_, Option<i64>>(col)
        .unwrap_or(0)
        .max(0)
        .unsigned_abs()
}

/// Computes the whole picture in one read-only snapshot, so its parts agree.
pub async fn project_stats(tx: &Transaction<'_>, req: &StatsRequest) -> Result<ProjectStats> {
    let since = micros(req.since);
    let now = micros(req.now);
    // The window's first event by a binary search over `seq` (migrations 0015 and 0019),
    // once (a subquery: as a filter it could run once per row), then the project's events
    // from there along `(project, seq)`; `at >= $2` keeps out any event from before the
    // window, should an old database hold stamps out of `seq` order. The creations that
    // operations rows stand for (migration 0021) are found the same way among them.
    let per_minute = tx
        .query(&*PER_MINUTE_SQL, &[&req.project_id, &since, &MINUTE_MICROS])
        .await
        .map_err(ctx("stats per minute"))?
        .iter()
        .map(|row| {
            Ok(MinuteCount {
                minute: time_at(row, 0)?,
                status: code_at(row, 1)?,
                operations: count_at(row, 2),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let durations = tx
        .query(
            "WITH d AS ( \
               SELECT kind, type, ended_at - COALESCE(started_at, created_at) AS dur \
               FROM operations WHERE project = (SELECT n FROM projects WHERE name = $1) AND ended_at >= $2 \
             ), r AS ( \
               SELECT kind, type, dur, \
                 ROW_NUMBER() OVER (PARTITION BY kind, type ORDER BY dur) AS rn, \
                 COUNT(*) OVER (PARTITION BY kind, type) AS n FROM d \
             ) \
             SELECT kind, type, MAX(n), \
               MIN(CASE WHEN rn * 100 >= n * 50 THEN dur END), \
               MIN(CASE WHEN rn * 100 >= n * 95 THEN dur END) \
             FROM r GROUP BY kind, type ORDER BY kind, type",
            &[&req.project_id, &since],
        )
        .await
        .map_err(ctx("stats durations"))?
        .iter()
        .map(|row| {
            Ok(DurationStats {
                kind: code_at(row, 0)?,
                op_type: code_at(row, 1)?,
                finished: count_at(row, 2),
                p50_ms: count_at(row, 3) / 1_000,
                p95_ms: count_at(row, 4) / 1_000,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let running = tx
        .query(
            "SELECT id, kind, type, COALESCE(started_at, created_at) AS s FROM operations \
             WHERE project = (SELECT n FROM projects WHERE name = $1) AND status = 1 ORDER BY s LIMIT $2",
            &[&req.project_id, &(RUNNING_SCAN as i64)],
        )
        .await
        .map_err(ctx("stats running"))?
        .iter()
        .map(|row| {
            Ok(Running {
                id: uuid_at(row, 0)?,
                kind: code_at(row, 1)?,
                op_type: code_at(row, 2)?,
                started_at: time_at(row, 3)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let long_running = long_running(&durations, running, req.now);
    // Less than half the lease left: a worker heartbeating on time renews well before.
    let expiring_leases = tx
        .query(
            "SELECT id, kind, type, lease_worker, lease_expires_at, lease_duration_ms \
             FROM operations WHERE project = (SELECT n FROM projects WHERE name = $1) AND lease_expires_at IS NOT NULL \
               AND (lease_expires_at - $2) * 2 < lease_duration_ms * 1000 \
             ORDER BY lease_expires_at LIMIT $3",
            &[&req.project_id, &now, &(ATTENTION_LIMIT as i64)],
        )
        .await
        .map_err(ctx("stats leases"))?
        .iter()
        .map(|row| {
            Ok(ExpiringLease {
                id: uuid_at(row, 0)?,
                kind: code_at(row, 1)?,
                op_type: code_at(row, 2)?,
                worker: row.get::<_, Option<String>>(3).unwrap_or_default(),
                expires_at: time_at(row, 4)?,
                lease_ms: count_at(row, 5),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ProjectStats {
        per_minute,
        durations,
        long_running,
        expiring_leases,
    })
}

/// Projects with operations, from the maintained counts (a few rows per project).
pub async fn projects(tx: &Transaction<'_>) -> Result<Vec<ProjectCount>> {
    tx.query(
        "SELECT p.name, SUM(c.n)::bigint FROM operation_counts c \
         JOIN projects p ON p.n = c.project GROUP BY p.name \
         HAVING SUM(c.n) > 0 ORDER BY p.name",
        &[],
    )
    .await
    .map_err(ctx("list projects"))?
    .iter()
    .map(|row| {
        Ok(ProjectCount {
            project_id: row.get(0),
            operations: count_at(row, 1),
        })
    })
    .collect()
}
