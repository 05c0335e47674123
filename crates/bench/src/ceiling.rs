//! The ceilings every scenario is divided by, measured in the same run:
//!
//! - **HTTP**: a minimal axum server (`opsd-bench ceiling-http`, its own process on the
//!   server core) that answers every request with a fixed body — the very bytes opsd
//!   answered for the scenario — so the ratio isolates what opsd does beyond HTTP.
//! - **Storage**: raw rusqlite inserts of the same rows (operation + its first event)
//!   into a copy of the seeded database (same schema and indexes), WAL with
//!   `synchronous=FULL`, committed in batches as large as the writer's batches get with
//!   the scenario's concurrency. No HTTP, no JSON, no savepoints, no idempotency lookup.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use opsd_domain::{micros, now};
use rusqlite::{Connection, params};
use uuid::Uuid;

use crate::workload::new_operation;

/// `opsd-bench ceiling-http`: serve `body_file` to every request until killed.
pub fn serve_http(body_file: &Path) -> Result<(), String> {
    let body = Bytes::from(std::fs::read(body_file).map_err(|e| e.to_string())?);
    // The same runtime opsd's binary builds: tokio's default multi-thread runtime, which
    // sizes itself to the CPUs this process is pinned to.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("ceiling listening on http://{addr}");
        let app = Router::new().fallback(move || {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "application/json")], body) }
        });
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}

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
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
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

/// One operation row and its creation event, with the columns and values opsd writes.
fn insert_row(conn: &Connection, i: u64) -> rusqlite::Result<()> {
    let new = new_operation("bench-ceiling", "ceiling", i);
    let id = Uuid::now_v7().to_string();
    let at = micros(now());
    let details = serde_json::to_string(&new.details).unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO operations (id, project_id, kind, type, resource_id, status, progress, \
         status_message, description, details, error, warnings, http_error_status_code, \
         http_error_message, user, request_id, request_hash, region, zone, target_link, \
         created_at, started_at, ended_at, updated_at, version) VALUES \
         (?1, ?2, ?3, ?4, ?5, 'pending', 0, NULL, ?6, ?7, NULL, '[]', NULL, NULL, ?8, ?9, \
         ?10, ?11, ?12, NULL, ?13, NULL, NULL, ?13, 1)",
    )?
    .execute(params![
        id,
        new.project_id,
        new.kind.as_str(),
        new.op_type.as_str(),
        new.resource_id,
        new.description,
        details,
        new.user,
        new.request_id,
        // A SHA-256 in hex is what opsd stores beside request_id.
        format!("{:064x}", u128::from(i as u32) * 0x9E37_79B9),
        new.region,
        new.zone,
        at,
    ])?;
    conn.prepare_cached(
        "INSERT INTO events (operation_id, project_id, version, status, progress, \
         status_message, at) VALUES (?1, ?2, 1, 'pending', 0, NULL, ?3)",
    )?
    .execute(params![id, new.project_id, at])?;
    Ok(())
}
