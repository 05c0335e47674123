//! Worker leases in SQLite. Every function here runs on the writer thread inside the
//! batch transaction, so a claim is atomic without any row locking: the single writer
//! picks the oldest matching operation and moves it before anything else can look.
//! The rules (who may change what, the messages) are the domain's `lease` module; this
//! file only loads and stores them. The token is random and only its hash is stored.

use std::time::Duration;

use opsd_domain::lease::{ClaimRequest, HeldLease};
use opsd_domain::{Operation, micros};
use opsd_store::rules;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::internal;
use crate::{feed, rows};
use opsd_store::sql::codes::Coded;
use opsd_store::{Change, Claimed, Heartbeat, Renewed, Result, StoreError};

/// The lease columns, read after [`rows::OPERATION_COLUMNS`].
const LEASE_COLUMNS: &str = "lease_token_hash, lease_worker, lease_expires_at, lease_duration_ms";

/// Loads an operation with its lease, if it holds one.
pub fn load_leased(conn: &Connection, id: Uuid) -> Result<Option<(Operation, Option<HeldLease>)>> {
    conn.prepare_cached(&format!(
        "SELECT {}, {LEASE_COLUMNS} FROM operations WHERE id = ?1",
        rows::OPERATION_COLUMNS.as_str()
    ))
    .and_then(|mut s| {
        s.query_row([rows::id_bytes(id)], |row| {
            Ok((
                rows::operation_from_row(row)?,
                lease_from_row(row, rows::OPERATION_COLUMN_COUNT)?,
            ))
        })
        .optional()
    })
    .map_err(internal("load leased operation"))
}

fn lease_from_row(row: &rusqlite::Row, at: usize) -> rusqlite::Result<Option<HeldLease>> {
    let hash: Option<String> = row.get(at)?;
    let worker: Option<String> = row.get(at + 1)?;
    let expires: Option<i64> = row.get(at + 2)?;
    let duration: Option<i64> = row.get(at + 3)?;
    let (Some(token_hash), Some(worker), Some(expires), Some(duration)) =
        (hash, worker, expires, duration)
    else {
        return Ok(None);
    };
    let expires_at = rows::from_micros(expires).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            at + 2,
            rusqlite::types::Type::Integer,
            "lease expiry out of range".into(),
        )
    })?;
    Ok(Some(HeldLease {
        token_hash,
        worker,
        expires_at,
        duration: Duration::from_millis(duration.unsigned_abs()),
    }))
}

/// Stores `lease` on operation `id`, or clears it.
pub fn write_lease(conn: &Connection, id: Uuid, lease: Option<&HeldLease>) -> Result<()> {
    let duration_ms = lease.map(|l| i64::try_from(l.duration.as_millis()).unwrap_or(i64::MAX));
    conn.prepare_cached(
        "UPDATE operations SET lease_token_hash = ?1, lease_worker = ?2, lease_expires_at = ?3, \
         lease_duration_ms = ?4 WHERE id = ?5",
    )
    .and_then(|mut s| {
        s.execute(params![
            lease.map(|l| &l.token_hash),
            lease.map(|l| &l.worker),
            lease.map(|l| micros(l.expires_at)),
            duration_ms,
            rows::id_bytes(id),
        ])
    })
    .map_err(internal("write lease"))?;
    Ok(())
}

/// Claims the oldest operation matching `request` (see `Store::claim`).
pub fn claim(
    conn: &Connection,
    request: &ClaimRequest,
    now: OffsetDateTime,
    changes: &mut Vec<Change>,
) -> Result<Option<Claimed>> {
    let mut terms = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    // `term` with its `{}` replaced by the placeholders of `items`, bound.
    let mut any_of = |term: &str, items: Vec<Value>| {
        let holes: Vec<String> = items
            .into_iter()
            .map(|v| {
                values.push(v);
                format!("?{}", values.len())
            })
            .collect();
        terms.push(term.replace("{}", &holes.join(", ")));
    };
    let statuses = request.statuses.iter().map(|s| s.code().into()).collect();
    any_of("status IN ({})", statuses);
    if let Some(p) = &request.project_id {
        let project = vec![p.clone().into()];
        any_of(
            "project IN (SELECT n FROM projects WHERE name IN ({}))",
            project,
        );
    }
    if !request.kinds.is_empty() {
        let kinds = request.kinds.iter().map(|k| k.code().into()).collect();
        any_of("kind IN ({})", kinds);
    }
    let sql = format!(
        "SELECT id FROM operations WHERE {} ORDER BY seq LIMIT 1",
        terms.join(" AND ")
    );
    let id: Option<Uuid> = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params_from_iter(values), |r| rows::uuid_at(r, 0))
                .optional()
        })
        .map_err(internal("find claimable operation"))?;
    let Some(id) = id else { return Ok(None) };
    let (current, _) = load_leased(conn, id)?.ok_or(StoreError::NotFound(id))?;
    let rules::Claim { next, lease, token } = rules::claim(&current, request, now)?;
    rows::update_operation(conn, &next).map_err(internal("update operation"))?;
    write_lease(conn, id, Some(&lease))?;
    feed::record(conn, &next, changes)?;
    Ok(Some(Claimed {
        operation: next,
        lease_token: token,
        lease_expires_at: lease.expires_at,
    }))
}

/// Renews the lease of `id` for its holder, applying progress or a message if given.
pub fn heartbeat(
    conn: &Connection,
    id: Uuid,
    heartbeat: &Heartbeat,
    now: OffsetDateTime,
    changes: &mut Vec<Change>,
) -> Result<Renewed> {
    let (current, held) = load_leased(conn, id)?.ok_or(StoreError::NotFound(id))?;
    let rules::Beat { renewed, next } = rules::heartbeat(&current, held.as_ref(), heartbeat, now)?;
    write_lease(conn, id, Some(&renewed))?;
    let operation = match next {
        Some(next) => {
            rows::update_operation(conn, &next).map_err(internal("update operation"))?;
            feed::record(conn, &next, changes)?;
            next
        }
        None => current,
    };
    Ok(Renewed {
        operation,
        lease_expires_at: renewed.expires_at,
    })
}

/// Moves up to `limit` operations whose lease ran out by `now` to `unknown`.
pub fn expire(
    conn: &Connection,
    limit: usize,
    now: OffsetDateTime,
    changes: &mut Vec<Change>,
) -> Result<Vec<Operation>> {
    let ids = conn
        .prepare_cached(
            "SELECT id FROM operations WHERE lease_expires_at IS NOT NULL \
             AND lease_expires_at <= ?1 ORDER BY lease_expires_at, seq LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(
                params![micros(now), i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| rows::uuid_at(r, 0),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(internal("find expired leases"))?;
    let mut expired = Vec::with_capacity(ids.len());
    for id in ids {
        let Some((current, Some(held))) = load_leased(conn, id)? else {
            continue;
        };
        write_lease(conn, id, None)?;
        match rules::expire(&current, &held, now) {
            Ok(next) => {
                rows::update_operation(conn, &next).map_err(internal("update operation"))?;
                feed::record(conn, &next, changes)?;
                expired.push(next);
            }
            // Leases live only while running, which may always become unknown; if that
            // ever breaks, drop the stale lease rather than retry it forever.
            Err(e) => {
                tracing::error!(%id, error = %e, "expired lease on an operation that cannot become unknown")
            }
        }
    }
    Ok(expired)
}
