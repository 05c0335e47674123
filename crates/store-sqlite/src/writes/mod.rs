//! What each write does inside the writer's transaction (`writer.rs` runs a batch of
//! them): creates and updates here, the rest in a file per concern. Every decision is a
//! shared rule of `opsd_store::rules` or the domain's; these functions load rows, ask
//! the rules and store the answer, recording each change for the feed.

mod cancel;
mod keys;
mod leases;
mod retention;
mod sessions;

use opsd_domain::{NewOperation, Operation, Patch};
use opsd_store::rules;
use opsd_store::write::{Write, Written};
use opsd_store::{Change, Created, Preconditions, Result, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::internal;
use crate::{feed, rows};

/// Whether every way this write can be refused (not found, a rule, a precondition,
/// idempotency) comes before its first change, so it needs no savepoint: a refusal
/// leaves nothing to undo, and a failure after a change rolls back the whole batch.
/// True of creates and updates, the hot writes (a savepoint and its undo journal
/// were ~10% of the writer's time); the rarer writes keep their savepoint.
pub fn refuses_before_changing(write: &Write) -> bool {
    matches!(write, Write::Create(_) | Write::Update { .. })
}

/// Carries out one write on the batch's connection; its changes go to `changes`, which
/// the writer publishes after the COMMIT.
pub fn apply(
    conn: &Connection,
    write: &Write,
    now: OffsetDateTime,
    changes: &mut Vec<Change>,
) -> Result<Written> {
    match write {
        Write::Create(new) => create(conn, new, now, changes).map(Written::Created),
        Write::Update { id, patch, pre } => {
            update(conn, *id, patch, pre, now, changes).map(Written::Updated)
        }
        Write::Claim(request) => leases::claim(conn, request, now, changes).map(Written::Claimed),
        Write::Heartbeat { id, heartbeat } => {
            leases::heartbeat(conn, *id, heartbeat, now, changes).map(Written::Renewed)
        }
        Write::ExpireLeases { limit } => {
            leases::expire(conn, *limit, now, changes).map(Written::Expired)
        }
        Write::Purge { before, batch_size } => {
            retention::purge(conn, *before, *batch_size).map(Written::Purged)
        }
        Write::Delete(id) => retention::delete_finished(conn, *id).map(Written::Purged),
        Write::CreateKey {
            key,
            hash,
            only_first,
        } => keys::create(conn, key, hash, *only_first, now).map(Written::Key),
        Write::RevokeKey(id) => keys::revoke(conn, *id, now).map(Written::Key),
        Write::Cancel(id) => cancel::apply(conn, *id, now, changes).map(Written::Updated),
        Write::CreateSession {
            hash,
            key_id,
            expires_at,
        } => sessions::create(conn, hash, *key_id, *expires_at, now).map(|()| Written::Done),
        Write::EndSession { hash, now } => sessions::end(conn, hash, *now).map(|()| Written::Done),
        Write::Probe => probe(conn).map(|()| Written::Done),
    }
}

fn create(
    conn: &Connection,
    new: &NewOperation,
    now: OffsetDateTime,
    changes: &mut Vec<Change>,
) -> Result<Created> {
    let hash = rules::request_hash(new);
    let existing = match &new.request_id {
        Some(request_id) => conn
            .prepare_cached(
                "SELECT id, request_hash FROM operations \
                 WHERE project = (SELECT n FROM projects WHERE name = ?1) AND request_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![new.project_id, request_id], |r| {
                    Ok((rows::uuid_at(r, 0)?, r.get::<_, Option<Vec<u8>>>(1)?))
                })
                .optional()
            })
            .map_err(internal("idempotency lookup"))?,
        None => None,
    };
    if let Some(id) = rules::idempotent_replay(new, hash.as_deref(), existing)? {
        let operation = load(conn, id)?.ok_or(StoreError::NotFound(id))?;
        return Ok(Created {
            operation,
            created: false,
        });
    }
    let mut op = new.clone().into_operation(Uuid::now_v7(), now);
    op.seq =
        rows::insert_operation(conn, &op, hash.as_deref()).map_err(internal("insert operation"))?;
    feed::record(conn, &op, changes)?;
    Ok(Created {
        operation: op,
        created: true,
    })
}

fn update(
    conn: &Connection,
    id: Uuid,
    patch: &Patch,
    pre: &Preconditions,
    now: OffsetDateTime,
    changes: &mut Vec<Change>,
) -> Result<Operation> {
    let (current, lease) = leases::load_leased(conn, id)?.ok_or(StoreError::NotFound(id))?;
    let rules::Updated {
        next,
        release_lease,
    } = rules::update(&current, lease.as_ref(), patch, pre, now)?;
    rows::update_operation(conn, &next).map_err(internal("update operation"))?;
    if release_lease {
        leases::write_lease(conn, id, None)?;
    }
    feed::record(conn, &next, changes)?;
    Ok(next)
}

/// Bytes the probe writes: more than a typical batch appends to the WAL, so that a
/// probe does not pass by fitting into the space a failed, larger commit left.
const PROBE_BYTES: i64 = 64 << 10;

fn probe(conn: &Connection) -> Result<()> {
    // A table of its own, outside the migrations: it holds one row that each probe
    // rewrites, and exists only once a write failed on this database.
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS readiness_probe (id INTEGER PRIMARY KEY, pad BLOB); \
         INSERT OR REPLACE INTO readiness_probe (id, pad) VALUES (1, randomblob({PROBE_BYTES}));"
    ))
    .map_err(internal("probe write"))
}

/// Reads one operation on the given connection (inside the writer's transaction).
pub fn load(conn: &Connection, id: Uuid) -> Result<Option<Operation>> {
    conn.prepare_cached(&rows::SELECT_BY_ID)
        .and_then(|mut s| {
            s.query_row([rows::id_bytes(id)], rows::operation_from_row)
                .optional()
        })
        .map_err(internal("load operation"))
}
