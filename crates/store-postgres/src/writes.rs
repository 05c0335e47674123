//! Every write, as it runs inside the writer's transaction with the feed head locked
//! (`feed.rs`). The decisions are the shared rules (`opsd_store::rules`), the same calls
//! the SQLite backend makes; this file loads rows, calls them and stores the outcome.
//! Row locks (`FOR UPDATE`, claims with `SKIP LOCKED`) keep each step correct on its
//! own, even though the feed head already serialises write transactions.

use deadpool_postgres::Transaction;
use opsd_domain::lease::{ClaimRequest, HeldLease};
use opsd_domain::{ApiKey, NewOperation, Operation, Patch, micros};
use opsd_store::{
    Change, Claimed, Created, Heartbeat, Preconditions, Renewed, Result, StoreError, rules,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::ctx;
use crate::feed::{self, Head};
use crate::rows::{self, INSERT_COLUMNS, LEASE_COLUMNS, OPERATION_COLUMNS, OperationValues};

/// Where a write records its changes.
pub struct Batch<'a> {
    /// The head this transaction holds.
    pub head: &'a mut Head,
    /// Changes to publish after COMMIT.
    pub changes: &'a mut Vec<Change>,
}

impl Batch<'_> {
    fn now(&self) -> OffsetDateTime {
        self.head.now
    }

    async fn record(&mut self, tx: &Transaction<'_>, op: &Operation) -> Result<()> {
        feed::record(tx, self.head, op, self.changes).await
    }
}

fn parse_id(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Internal(format!("bad id {s:?}: {e}")))
}

/// Loads an operation with its lease, locking its row for the transaction.
pub async fn load_leased(
    tx: &Transaction<'_>,
    id: Uuid,
) -> Result<Option<(Operation, Option<HeldLease>)>> {
    let row = tx
        .query_opt(
            &crate::prepared(
                tx,
                &format!(
                    "SELECT {OPERATION_COLUMNS}, {LEASE_COLUMNS} FROM operations WHERE id = $1 \
                 FOR UPDATE"
                ),
            )
            .await?,
            &[&id.to_string()],
        )
        .await
        .map_err(ctx("load operation"))?;
    row.map(|r| Ok((rows::operation(&r)?, rows::lease(&r)?)))
        .transpose()
}

async fn load(tx: &Transaction<'_>, id: Uuid) -> Result<Operation> {
    load_leased(tx, id)
        .await?
        .map(|(op, _)| op)
        .ok_or(StoreError::NotFound(id))
}

async fn write_row(tx: &Transaction<'_>, op: &Operation) -> Result<()> {
    let v = OperationValues::of(op);
    tx.execute(
        &crate::prepared(
            tx,
            "UPDATE operations SET status = $1, progress = $2, status_message = $3, error = $4, \
         warnings = $5, http_error_status_code = $6, http_error_message = $7, \
         started_at = $8, ended_at = $9, updated_at = $10, version = $11, \
         cancel_requested = $13 WHERE id = $12",
        )
        .await?,
        &v.update_params(op),
    )
    .await
    .map_err(ctx("update operation"))?;
    Ok(())
}

async fn write_lease(tx: &Transaction<'_>, id: Uuid, lease: Option<&HeldLease>) -> Result<()> {
    let duration_ms = lease.map(|l| i64::try_from(l.duration.as_millis()).unwrap_or(i64::MAX));
    tx.execute(
        &crate::prepared(tx, "UPDATE operations SET lease_token_hash = $1, lease_worker = $2, lease_expires_at = $3, \
         lease_duration_ms = $4 WHERE id = $5").await?,
        &[
            &lease.map(|l| &l.token_hash),
            &lease.map(|l| &l.worker),
            &lease.map(|l| micros(l.expires_at)),
            &duration_ms,
            &id.to_string(),
        ],
    )
    .await
    .map_err(ctx("write lease"))?;
    Ok(())
}

async fn find_request(
    tx: &Transaction<'_>,
    new: &NewOperation,
) -> Result<Option<(Uuid, Option<Vec<u8>>)>> {
    let Some(request_id) = &new.request_id else {
        return Ok(None);
    };
    let row = tx
        .query_opt(
            &crate::prepared(
                tx,
                "SELECT id, request_hash FROM operations WHERE project_id = $1 AND request_id = $2",
            )
            .await?,
            &[&new.project_id, request_id],
        )
        .await
        .map_err(ctx("idempotency lookup"))?;
    row.map(|r| Ok((parse_id(r.get(0))?, r.get(1)))).transpose()
}

/// Creates an operation, or replays the one an earlier identical request created.
pub async fn create(
    tx: &Transaction<'_>,
    b: &mut Batch<'_>,
    new: &NewOperation,
) -> Result<Created> {
    let hash = rules::request_hash(new);
    loop {
        let existing = find_request(tx, new).await?;
        if let Some(id) = rules::idempotent_replay(new, hash.as_deref(), existing)? {
            return Ok(Created {
                operation: load(tx, id).await?,
                created: false,
            });
        }
        let mut op = new.clone().into_operation(Uuid::now_v7(), b.now());
        let v = OperationValues::of(&op);
        // The unique index decides a race with a create that committed since the lookup;
        // the loser replays (or conflicts with) the winner.
        let inserted = tx
            .query_opt(
                &crate::prepared(
                    tx,
                    &format!(
                        "INSERT INTO operations ({INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, \
                         $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                         $20, $21, $22, $23, $24, $25, $26) ON CONFLICT (project_id, request_id) \
                         WHERE request_id IS NOT NULL DO NOTHING RETURNING seq"
                    ),
                )
                .await?,
                &v.insert_params(&op, &hash),
            )
            .await
            .map_err(ctx("insert operation"))?;
        let Some(row) = inserted else { continue };
        op.seq = row.get::<_, i64>(0).unsigned_abs();
        b.record(tx, &op).await?;
        return Ok(Created {
            operation: op,
            created: true,
        });
    }
}

/// Applies a patch through the state machine.
pub async fn update(
    tx: &Transaction<'_>,
    b: &mut Batch<'_>,
    id: Uuid,
    patch: &Patch,
    pre: &Preconditions,
) -> Result<Operation> {
    let (current, lease) = load_leased(tx, id).await?.ok_or(StoreError::NotFound(id))?;
    let rules::Updated {
        next,
        release_lease,
    } = rules::update(&current, lease.as_ref(), patch, pre, b.now())?;
    write_row(tx, &next).await?;
    if release_lease {
        write_lease(tx, id, None).await?;
    }
    b.record(tx, &next).await?;
    Ok(next)
}

/// A cancellation request (the rules are the domain's `cancel`): a pending operation
/// fails at once, a running or unknown one is flagged for its worker, asking twice
/// changes nothing. The lease is left to the worker that holds it.
pub async fn cancel(tx: &Transaction<'_>, b: &mut Batch<'_>, id: Uuid) -> Result<Operation> {
    let current = load(tx, id).await?;
    let Some(next) = opsd_domain::cancel::cancel(&current, b.now())? else {
        return Ok(current);
    };
    write_row(tx, &next).await?;
    b.record(tx, &next).await?;
    Ok(next)
}

/// Claims the oldest matching operation. `SKIP LOCKED` passes over rows another
/// transaction is changing instead of waiting for them.
pub async fn claim(
    tx: &Transaction<'_>,
    b: &mut Batch<'_>,
    request: &ClaimRequest,
) -> Result<Option<Claimed>> {
    let statuses: Vec<&str> = request.statuses.iter().map(|s| s.as_str()).collect();
    let kinds: Vec<&str> = request.kinds.iter().map(|k| k.as_str()).collect();
    let row = tx
        .query_opt(
            &crate::prepared(
                tx,
                "SELECT id FROM operations WHERE status = ANY($1) \
             AND ($2::text IS NULL OR project_id = $2) \
             AND (cardinality($3::text[]) = 0 OR kind = ANY($3)) \
             ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
            )
            .await?,
            &[&statuses, &request.project_id, &kinds],
        )
        .await
        .map_err(ctx("find claimable operation"))?;
    let Some(row) = row else { return Ok(None) };
    let id = parse_id(row.get(0))?;
    let current = load(tx, id).await?;
    let rules::Claim { next, lease, token } = rules::claim(&current, request, b.now())?;
    write_row(tx, &next).await?;
    write_lease(tx, id, Some(&lease)).await?;
    b.record(tx, &next).await?;
    Ok(Some(Claimed {
        operation: next,
        lease_token: token,
        lease_expires_at: lease.expires_at,
    }))
}

/// Renews a lease, applying progress or a message if given.
pub async fn heartbeat(
    tx: &Transaction<'_>,
    b: &mut Batch<'_>,
    id: Uuid,
    heartbeat: &Heartbeat,
) -> Result<Renewed> {
    let (current, held) = load_leased(tx, id).await?.ok_or(StoreError::NotFound(id))?;
    let rules::Beat { renewed, next } =
        rules::heartbeat(&current, held.as_ref(), heartbeat, b.now())?;
    write_lease(tx, id, Some(&renewed)).await?;
    let operation = match next {
        Some(next) => {
            write_row(tx, &next).await?;
            b.record(tx, &next).await?;
            next
        }
        None => current,
    };
    Ok(Renewed {
        operation,
        lease_expires_at: renewed.expires_at,
    })
}

/// Moves up to `limit` operations whose lease ran out (by the transaction's time, the
/// database's clock) to `unknown`. Rows another replica is expiring are skipped.
pub async fn expire(
    tx: &Transaction<'_>,
    b: &mut Batch<'_>,
    limit: usize,
) -> Result<Vec<Operation>> {
    let ids = tx
        .query(
            &crate::prepared(
                tx,
                "SELECT id FROM operations WHERE lease_expires_at IS NOT NULL \
             AND lease_expires_at <= $1 ORDER BY lease_expires_at, seq LIMIT $2 \
             FOR UPDATE SKIP LOCKED",
            )
            .await?,
            &[&micros(b.now()), &i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .await
        .map_err(ctx("find expired leases"))?;
    let mut expired = Vec::with_capacity(ids.len());
    for row in ids {
        let id = parse_id(row.get(0))?;
        let Some((current, Some(held))) = load_leased(tx, id).await? else {
            continue;
        };
        write_lease(tx, id, None).await?;
        match rules::expire(&current, &held, b.now()) {
            Ok(next) => {
                write_row(tx, &next).await?;
                b.record(tx, &next).await?;
                expired.push(next);
            }
            Err(e) => {
                tracing::error!(%id, error = %e, "expired lease on an operation that cannot become unknown")
            }
        }
    }
    Ok(expired)
}

/// Deletes up to `batch_size` terminal operations that ended before `before`, with their
/// events, raising the feed horizon past the events deleted.
pub async fn purge(tx: &Transaction<'_>, before: OffsetDateTime, batch_size: usize) -> Result<u64> {
    let ids: Vec<String> = tx
        .query(
            &crate::prepared(
                tx,
                "SELECT id FROM operations WHERE ended_at IS NOT NULL AND ended_at < $1 \
             AND status IN ('done', 'failed') ORDER BY ended_at, seq LIMIT $2 \
             FOR UPDATE SKIP LOCKED",
            )
            .await?,
            &[
                &micros(before),
                &i64::try_from(batch_size).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(ctx("find expired operations"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let highest: Option<i64> = tx
        .query_one(
            &crate::prepared(
                tx,
                "WITH gone AS (DELETE FROM events WHERE op_seq IN \
             (SELECT seq FROM operations WHERE id = ANY($1)) RETURNING seq) \
             SELECT MAX(seq) FROM gone",
            )
            .await?,
            &[&ids],
        )
        .await
        .map_err(ctx("delete events"))?
        .get(0);
    tx.execute(
        &crate::prepared(tx, "DELETE FROM operations WHERE id = ANY($1)").await?,
        &[&ids],
    )
    .await
    .map_err(ctx("delete operations"))?;
    if let Some(highest) = highest {
        feed::raise_horizon(tx, highest.unsigned_abs()).await?;
    }
    Ok(ids.len() as u64)
}

/// Stores a minted key, stamped with the transaction's time; with `only_first`, only if
/// no key was ever created (`None` then). Atomic across processes: the transaction
/// holds the feed head, which every write transaction takes first.
pub async fn create_key(
    tx: &Transaction<'_>,
    now: OffsetDateTime,
    key: &ApiKey,
    hash: &[u8; 32],
    only_first: bool,
) -> Result<Option<ApiKey>> {
    if only_first
        && tx
            .query_opt(
                &crate::prepared(tx, "SELECT 1 FROM api_keys LIMIT 1").await?,
                &[],
            )
            .await
            .map_err(ctx("look for api keys"))?
            .is_some()
    {
        return Ok(None);
    }
    let mut key = key.clone();
    key.created_at = now;
    tx.execute(
        &crate::prepared(
            tx,
            "INSERT INTO api_keys (id, name, role, projects, key_hash, key_prefix, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?,
        &[
            &key.id.to_string(),
            &key.name,
            &key.role.as_str(),
            &rows::json(&key.projects.to_list()),
            &hash.as_slice(),
            &key.prefix,
            &micros(now),
        ],
    )
    .await
    .map_err(ctx("insert api key"))?;
    Ok(Some(key))
}

/// Revokes a key (keeping the first revocation time).
pub async fn revoke_key(tx: &Transaction<'_>, now: OffsetDateTime, id: Uuid) -> Result<ApiKey> {
    let row = tx
        .query_opt(
            &crate::prepared(
                tx,
                &format!(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
                 RETURNING {}",
                    crate::keys::COLUMNS
                ),
            )
            .await?,
            &[&id.to_string(), &micros(now)],
        )
        .await
        .map_err(ctx("revoke api key"))?;
    row.map(|r| crate::keys::key(&r))
        .transpose()?
        .ok_or(StoreError::KeyNotFound(id))
}

/// Stores a console session for `key_id`, only while the key is live: a key revoked
/// between its verification and here gets none (`KeyNotFound`).
pub async fn create_session(
    tx: &Transaction<'_>,
    now: OffsetDateTime,
    hash: &[u8; 32],
    key_id: Uuid,
    expires_at: OffsetDateTime,
) -> Result<()> {
    let inserted = tx
        .execute(
            &crate::prepared(
                tx,
                "INSERT INTO sessions (secret_hash, key_id, created_at, expires_at) \
                 SELECT $1, id, $3, $4 FROM api_keys WHERE id = $2 AND revoked_at IS NULL",
            )
            .await?,
            &[
                &hash.as_slice(),
                &key_id.to_string(),
                &micros(now),
                &micros(expires_at),
            ],
        )
        .await
        .map_err(ctx("create session"))?;
    if inserted == 0 {
        return Err(StoreError::KeyNotFound(key_id));
    }
    Ok(())
}

/// Ends a session and drops every session expired by `now`.
pub async fn end_session(tx: &Transaction<'_>, hash: &[u8; 32], now: OffsetDateTime) -> Result<()> {
    tx.execute(
        &crate::prepared(
            tx,
            "DELETE FROM sessions WHERE secret_hash = $1 OR expires_at <= $2",
        )
        .await?,
        &[&hash.as_slice(), &micros(now)],
    )
    .await
    .map_err(ctx("end session"))?;
    Ok(())
}
