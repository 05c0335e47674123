//! The single writer. SQLite allows one writer at a time, so instead of many connections
//! fighting over the lock, one thread owns the write connection and drains a queue:
//! every write waiting in the queue joins one `BEGIN IMMEDIATE … COMMIT` (group commit),
//! each inside its own savepoint so one refused write never undoes its neighbours. A
//! caller hears back only after the COMMIT (with `synchronous=FULL`) returned, so every
//! acknowledged write is on disk.

use std::sync::Arc;

use opsd_domain::{NewOperation, Operation, Patch, state_machine};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::rows;
use crate::{Created, Result, StoreError};

/// The most writes one transaction takes; bounds the latency of the first in the batch.
const MAX_BATCH: usize = 512;

/// A write waiting for the writer.
pub enum Write {
    Create(NewOperation),
    Update {
        id: Uuid,
        patch: Patch,
        expected_version: Option<u64>,
    },
    /// API key management (see `keys`).
    Key(super::keys::KeyWrite),
}

/// What a write produced.
pub enum Written {
    Created(Created),
    Updated(Operation),
    Key(opsd_domain::ApiKey),
}

/// A queued write and where to send its outcome.
pub struct Job {
    pub write: Write,
    pub reply: oneshot::Sender<Result<Written>>,
}

/// Source of "now" for timestamps; tests substitute a coarse or fixed clock.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Runs the writer loop until every sender is dropped.
pub fn run(mut conn: Connection, mut queue: mpsc::Receiver<Job>, clock: Clock) {
    let mut last_now = OffsetDateTime::UNIX_EPOCH;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Timestamps never go backwards, even if the wall clock does, and carry the
        // microsecond precision the store keeps, so a write returns what a read will see.
        last_now = opsd_domain::truncate_micros(clock()).max(last_now);
        commit_batch(&mut conn, &mut batch, last_now);
    }
}

fn commit_batch(conn: &mut Connection, batch: &mut Vec<Job>, now: OffsetDateTime) {
    let outcome = (|| -> rusqlite::Result<Vec<Result<Written>>> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(batch.len());
        for job in batch.iter() {
            let sp = tx.savepoint()?;
            let result = apply(&sp, &job.write, now);
            if result.is_ok() {
                sp.commit()?;
            } // else: dropping the savepoint rolls back this write alone.
            results.push(result);
        }
        tx.commit()?;
        Ok(results)
    })();
    match outcome {
        Ok(results) => {
            for (job, result) in batch.drain(..).zip(results) {
                // A caller that went away no longer needs the answer; the write stands.
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, writes = batch.len(), "write transaction failed");
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(StoreError::Internal(format!(
                    "write transaction failed: {e}"
                ))));
            }
        }
    }
}

fn internal(context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Internal(format!("{context}: {e}"))
}

fn apply(conn: &Connection, write: &Write, now: OffsetDateTime) -> Result<Written> {
    match write {
        Write::Create(new) => create(conn, new, now).map(Written::Created),
        Write::Update {
            id,
            patch,
            expected_version,
        } => update(conn, *id, patch, *expected_version, now).map(Written::Updated),
        Write::Key(k) => super::keys::apply(conn, k, now).map(Written::Key),
    }
}

fn create(conn: &Connection, new: &NewOperation, now: OffsetDateTime) -> Result<Created> {
    let hash = new
        .request_id
        .as_ref()
        .map(|_| hex_sha256(&new.canonical_json()));
    if let (Some(request_id), Some(hash)) = (&new.request_id, &hash) {
        let existing: Option<(String, Option<String>)> = conn
            .prepare_cached(
                "SELECT id, request_hash FROM operations WHERE project_id = ?1 AND request_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![new.project_id, request_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(internal("idempotency lookup"))?;
        if let Some((id, stored_hash)) = existing {
            let id = Uuid::parse_str(&id).map_err(|e| StoreError::Internal(e.to_string()))?;
            if stored_hash.as_deref() != Some(hash.as_str()) {
                return Err(StoreError::IdempotencyConflict {
                    request_id: request_id.clone(),
                    existing: id,
                });
            }
            let operation = load(conn, id)?.ok_or(StoreError::NotFound(id))?;
            return Ok(Created {
                operation,
                created: false,
            });
        }
    }
    let mut op = new.clone().into_operation(Uuid::now_v7(), now);
    op.seq =
        rows::insert_operation(conn, &op, hash.as_deref()).map_err(internal("insert operation"))?;
    rows::insert_event(conn, &op).map_err(internal("insert event"))?;
    Ok(Created {
        operation: op,
        created: true,
    })
}

fn update(
    conn: &Connection,
    id: Uuid,
    patch: &Patch,
    expected_version: Option<u64>,
    now: OffsetDateTime,
) -> Result<Operation> {
    let current = load(conn, id)?.ok_or(StoreError::NotFound(id))?;
    if let Some(expected) = expected_version
        && expected != current.version
    {
        return Err(StoreError::VersionMismatch {
            expected,
            current: current.version,
        });
    }
    let next = state_machine::apply(&current, patch, now)?;
    rows::update_operation(conn, &next).map_err(internal("update operation"))?;
    rows::insert_event(conn, &next).map_err(internal("insert event"))?;
    Ok(next)
}

/// Reads one operation on the given connection (inside the writer's transaction).
pub fn load(conn: &Connection, id: Uuid) -> Result<Option<Operation>> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM operations WHERE id = ?1",
        rows::OPERATION_COLUMNS
    ))
    .and_then(|mut s| {
        s.query_row([id.to_string()], rows::operation_from_row)
            .optional()
    })
    .map_err(internal("load operation"))
}

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
