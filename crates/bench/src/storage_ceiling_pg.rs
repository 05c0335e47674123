//! The storage ceiling on PostgreSQL: raw inserts of the rows opsd writes for a create
//! (the operation, whose row stands for its creation event) into a copy of the
//! seeded database (same schema, indexes and count triggers: opsd's migrations), with
//! `synchronous_commit = on`, by tokio-postgres directly. No HTTP, no JSON parsing, no
//! savepoints, no idempotency lookup, and no feed-head lock (opsd's commit-order
//! mechanism): seqs are numbered by the client.
//!
//! Two ways a client can use 64-way concurrency are measured, and the better one is the
//! ceiling, so the ratio is against the most the database gave a raw client:
//!
//! - [`Strategy::Batched`]: 64 rows per transaction on one connection, the statements
//!   pipelined — what opsd's writer does with 64 producers, and what the SQLite
//!   ceiling does;
//! - [`Strategy::PerRow`]: 64 connections, one row per transaction each (one statement,
//!   autocommit) — what a database offers concurrent clients that do not batch; the
//!   server's WAL flush may still combine their commits.
//!
//! Each round runs on its own single-threaded runtime on the server core, where opsd
//! ran; PostgreSQL's own processes are not pinned (as for opsd's rounds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use opsd_domain::{micros, now};
use opsd_store::sql::codes::Coded;
use opsd_store_open::DatabaseUrl;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::pg::{connect, error_text};
use crate::workload::{fingerprint, new_operation};

/// A kind or type as opsd stores it.
fn code<T: Coded>(value: T) -> i16 {
    i16::try_from(value.code()).unwrap_or(i16::MAX)
}

/// How the ceiling's client commits.
#[derive(Debug, Clone, Copy)]
pub enum Strategy {
    /// `rows` inserts per transaction, on one connection.
    Batched { rows: usize },
    /// `conns` connections, each committing one row per transaction.
    PerRow { conns: usize },
}

/// One operation, in one statement (one round trip). Its row stands for its creation
/// event (migration 0021), whose seq it takes, as opsd's writer does.
const INSERT: &str = "INSERT INTO operations (seq, id, project, kind, type, \
     resource_id, status, progress, status_message, description, details, error, warnings, \
     http_error_status_code, http_error_message, \"user\", request_id, request_hash, region, \
     zone, target_link, created_at, started_at, ended_at, updated_at, version, \
     creation_stored) VALUES \
     ($14, $1, (SELECT n FROM projects WHERE name = $2), $3, $4, $5, 0, 0, NULL, $6, $7, \
     NULL, '[]', NULL, NULL, $8, $9, $10, $11, $12, NULL, $13, NULL, NULL, $13, 1, false)";

/// The ceiling's project, numbered as opsd numbers a project on its first create.
const PROJECT: &str = "bench-ceiling";

/// Row numbers (their idempotency keys must not repeat) and event seqs, shared by the
/// rounds of one ceiling database.
pub struct Counters {
    /// The next row number.
    pub row: AtomicU64,
    /// The next event seq.
    pub seq: AtomicU64,
}

/// Inserts into the database at `url` for `duration` the way `strategy` says. Returns
/// (rows, seconds). Blocking: call it on the thread that should run the client.
pub fn storage(
    url: &DatabaseUrl,
    strategy: Strategy,
    duration: Duration,
    counters: &Arc<Counters>,
) -> Result<(u64, f64), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(async {
            match strategy {
                Strategy::Batched { rows } => batched(url, rows.max(1), duration, counters).await,
                Strategy::PerRow { conns } => per_row(url, conns.max(1), duration, counters).await,
            }
        })
}

async fn open(url: &DatabaseUrl) -> Result<(Client, tokio_postgres::Statement), String> {
    let client = connect(url).await?;
    client
        .batch_execute("SET synchronous_commit = on")
        .await
        .map_err(|e| format!("storage ceiling: {}", error_text(&e)))?;
    client
        .execute(
            "INSERT INTO projects (name) SELECT $1::text \
             WHERE NOT EXISTS (SELECT 1 FROM projects WHERE name = $1)",
            &[&PROJECT],
        )
        .await
        .map_err(|e| format!("storage ceiling: project: {}", error_text(&e)))?;
    let insert = client
        .prepare(INSERT)
        .await
        .map_err(|e| format!("storage ceiling: prepare: {}", error_text(&e)))?;
    Ok((client, insert))
}

async fn batched(
    url: &DatabaseUrl,
    rows: usize,
    duration: Duration,
    counters: &Counters,
) -> Result<(u64, f64), String> {
    let (mut client, insert) = open(url).await?;
    let err = |e: tokio_postgres::Error| format!("storage ceiling: {}", error_text(&e));
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < duration {
        let tx = client.transaction().await.map_err(err)?;
        let batch: Vec<Row> = (0..rows).map(|_| Row::next(counters)).collect();
        let params: Vec<_> = batch.iter().map(Row::params).collect();
        // Polled together, the statements go out back to back on the one connection.
        try_join_all(params.iter().map(|p| tx.execute(&insert, p)))
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        done += rows as u64;
    }
    Ok((done, started.elapsed().as_secs_f64()))
}

async fn per_row(
    url: &DatabaseUrl,
    conns: usize,
    duration: Duration,
    counters: &Counters,
) -> Result<(u64, f64), String> {
    let clients = try_join_all((0..conns).map(|_| open(url))).await?;
    let started = Instant::now();
    let done = try_join_all(clients.iter().map(|(client, insert)| async move {
        let mut rows = 0u64;
        while started.elapsed() < duration {
            let row = Row::next(counters);
            client
                .execute(insert, &row.params())
                .await
                .map_err(|e| format!("storage ceiling: {}", error_text(&e)))?;
            rows += 1;
        }
        Ok::<_, String>(rows)
    }))
    .await?;
    Ok((done.iter().sum(), started.elapsed().as_secs_f64()))
}

/// The values of one operation, as opsd would write them.
struct Row {
    id: Uuid,
    project: String,
    kind: i16,
    op_type: i16,
    resource_id: String,
    description: Option<String>,
    details: String,
    user: Option<String>,
    request_id: Option<String>,
    request_hash: Option<Vec<u8>>,
    region: Option<String>,
    zone: Option<String>,
    at: i64,
    seq: i64,
}

impl Row {
    fn next(counters: &Counters) -> Row {
        let i = counters.row.fetch_add(1, Ordering::Relaxed);
        let seq = counters.seq.fetch_add(1, Ordering::Relaxed);
        let new = new_operation(PROJECT, "ceiling", i);
        let at = now();
        let op = new.clone().into_operation(Uuid::now_v7(), at);
        Row {
            id: op.id,
            kind: code(new.kind),
            op_type: code(new.op_type),
            details: serde_json::to_string(&new.details).unwrap_or_default(),
            request_hash: Some(fingerprint(i)),
            at: micros(at),
            seq: i64::try_from(seq).unwrap_or(i64::MAX),
            project: new.project_id,
            resource_id: new.resource_id,
            description: new.description,
            user: new.user,
            request_id: new.request_id,
            region: new.region,
            zone: new.zone,
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 14] {
        [
            &self.id,
            &self.project,
            &self.kind,
            &self.op_type,
            &self.resource_id,
            &self.description,
            &self.details,
            &self.user,
            &self.request_id,
            &self.request_hash,
            &self.region,
            &self.zone,
            &self.at,
            &self.seq,
        ]
    }
}
