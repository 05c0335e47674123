//! The storage ceiling the write scenarios are divided by, measured in the same run: raw
//! rusqlite inserts of the same rows (operation + its first event) into a copy of the
//! seeded database (same schema and indexes), WAL with `synchronous=FULL`, committed in
//! batches as large as the writer's batches get with the scenario's concurrency. No
//! HTTP, no JSON, no savepoints, no idempotency lookup. On PostgreSQL, raw
//! tokio-postgres inserts of the same rows (`storage_ceiling_pg`).
//!
//! [`StorageCeiling`] runs the storage ceiling of either backend in rounds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use opsd_domain::{micros, now};
use opsd_store::sql::codes::Coded;
use opsd_store_open::DatabaseUrl;
use rusqlite::{Connection, params};
use serde_json::Value;
use uuid::Uuid;

use crate::machine::Pinning;
use crate::storage_ceiling_pg::{self, Counters, Strategy};
use crate::workload::{fingerprint, new_operation};

/// Inserts batches of `batch` operations into `db` for `duration`, numbering rows from
/// `first_row` (their idempotency keys must not repeat). Returns (rows, seconds).
pub fn storage(
    db: &Path,
    batch: usize,
    duration: Duration,
    first_row: u64,
) -> Result<(u64, f64), String> {
    let err = |e: rusqlite::Error| format!("storage ceiling: {e}");
    let mut conn = Connection::open(db).map_err(err)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         INSERT OR IGNORE INTO projects (name) VALUES ('bench-ceiling');",
    )
    .map_err(err)?;
    let started = Instant::now();
    let mut rows = 0u64;
    while started.elapsed() < duration {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        for _ in 0..batch.max(1) {
            insert_row(&tx, first_row + rows).map_err(err)?;
            rows += 1;
        }
        tx.commit().map_err(err)?;
    }
    Ok((rows, started.elapsed().as_secs_f64()))
}

/// One operation row and its creation event, with the columns and values opsd writes
/// (SQLite's compact row: the project's number, the id's bytes, enum codes).
fn insert_row(conn: &Connection, i: u64) -> rusqlite::Result<()> {
    let new = new_operation("bench-ceiling", "ceiling", i);
    let id = Uuid::now_v7().into_bytes();
    let at = micros(now());
    let details = serde_json::to_string(&new.details).unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO operations (id, project, kind, type, resource_id, status, progress, \
         status_message, description, details, error, warnings, http_error_status_code, \
         http_error_message, user, request_id, request_hash, region, zone, target_link, \
         created_at, started_at, ended_at, updated_at, version) VALUES \
         (?1, (SELECT n FROM projects WHERE name = ?2), ?3, ?4, ?5, 0, 0, NULL, ?6, ?7, NULL, \
         '[]', NULL, NULL, ?8, ?9, ?10, ?11, ?12, NULL, ?13, NULL, NULL, ?13, 1)",
    )?
    .execute(params![
        id,
        new.project_id,
        new.kind.code(),
        new.op_type.code(),
        new.resource_id,
        new.description,
        details,
        new.user,
        new.request_id,
        fingerprint(i),
        new.region,
        new.zone,
        at,
    ])?;
    // The event keeps what a change can touch and points at its operation by seq
    // (`opsd_store::history`).
    let op_seq = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO events (op_seq, project, version, status, progress, status_message, at) \
         VALUES (?1, (SELECT project FROM operations WHERE seq = ?1), 1, 0, 0, NULL, ?2)",
    )?
    .execute(params![op_seq, at])?;
    Ok(())
}

/// The storage ceiling of one database copy, measured over one or more rounds.
pub enum StorageCeiling {
    /// Raw rusqlite inserts, `batch` rows per transaction: (rows, seconds) so far.
    Sqlite {
        db: PathBuf,
        batch: usize,
        rows: u64,
        secs: f64,
    },
    /// Raw tokio-postgres inserts, both ways (see `storage_ceiling_pg`): (rows, seconds) of each.
    Postgres {
        /// Through the link of the scenario (the delaying proxy, at a round trip above 0).
        url: Box<DatabaseUrl>,
        counters: Arc<Counters>,
        batch: usize,
        batched: (u64, f64),
        per_row: (u64, f64),
    },
}

impl StorageCeiling {
    /// Ready to measure on `copy` (a copy of the template), `batch` rows per transaction,
    /// on PostgreSQL through `link`.
    pub fn new(
        copy: &crate::template::Copy,
        batch: usize,
        link: &crate::link::Link,
    ) -> Result<Self, String> {
        Ok(match &copy.db {
            None => StorageCeiling::Sqlite {
                db: copy.dir.path().join("opsd.db"),
                batch,
                rows: 0,
                secs: 0.0,
            },
            Some(db) => StorageCeiling::Postgres {
                url: Box::new(link.url(&db.url)?),
                counters: Arc::new(Counters {
                    row: AtomicU64::new(0),
                    seq: AtomicU64::new(db.last_event_seq()? + 1),
                }),
                batch,
                batched: (0, 0.0),
                per_row: (0, 0.0),
            },
        })
    }

    /// One round of `duration` (on PostgreSQL, of each way).
    pub fn round(&mut self, pinning: &Pinning, duration: Duration) -> Result<(), String> {
        let on_server = |f: &(dyn Fn() -> Result<(u64, f64), String> + Sync)| {
            pinning
                .run_on_server_core(f)
                .ok_or("storage ceiling thread panicked")?
        };
        match self {
            StorageCeiling::Sqlite {
                db,
                batch,
                rows,
                secs,
            } => {
                let first = *rows;
                let (r, s) = on_server(&|| storage(db, *batch, duration, first))?;
                *rows += r;
                *secs += s;
            }
            StorageCeiling::Postgres {
                url,
                counters,
                batch,
                batched,
                per_row,
            } => {
                let ways = [
                    (Strategy::Batched { rows: *batch }, batched),
                    (Strategy::PerRow { conns: *batch }, per_row),
                ];
                for (strategy, total) in ways {
                    let (r, s) = on_server(&|| {
                        storage_ceiling_pg::storage(url, strategy, duration, counters)
                    })?;
                    total.0 += r;
                    total.1 += s;
                }
            }
        }
        Ok(())
    }

    /// Rows per second, and notes for results.json.
    pub fn result(&self) -> (f64, Vec<(&'static str, Value)>) {
        let rate = |(rows, secs): (u64, f64)| rows as f64 / secs.max(1e-9);
        match self {
            StorageCeiling::Sqlite {
                batch, rows, secs, ..
            } => (
                rate((*rows, *secs)),
                vec![("ceiling_batch_rows", (*batch).into())],
            ),
            StorageCeiling::Postgres {
                batch,
                batched,
                per_row,
                ..
            } => {
                let (b, p) = (rate(*batched), rate(*per_row));
                let best = if b >= p { "batched" } else { "per_row" };
                let r = |v: f64| crate::outcome::r3(v).into();
                (
                    b.max(p),
                    vec![
                        ("ceiling_batched_rows_per_s", r(b)),
                        ("ceiling_batch_rows", (*batch).into()),
                        ("ceiling_per_row_rows_per_s", r(p)),
                        ("ceiling_per_row_connections", (*batch).into()),
                        ("ceiling_used", best.into()),
                    ],
                )
            }
        }
    }
}
