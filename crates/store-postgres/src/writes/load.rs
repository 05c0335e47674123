//! The first round trip of a batch: one flight that opens the transaction and reads every
//! row the batch's writes touch, and the time to stamp them with.
//!
//! - rows named by id (updates, heartbeats, cancels) are locked `FOR UPDATE` in `seq`
//!   order, so two replicas writing the same operations queue on them in one order and
//!   never deadlock, and no replica decides on a row another one is changing;
//! - creates with a `request_id` look up an earlier operation with it (not locked: a
//!   create racing another replica's is settled by the unique index when it writes, and
//!   the batch then runs again and replays or conflicts);
//! - claims, lease expiry and retention pick candidates `FOR UPDATE SKIP LOCKED`,
//!   passing over rows another transaction holds;
//! - last, one statement reads the clock and the head's stamp (not locked), after every
//!   other read, so the batch's time is not earlier than any clock a read compared
//!   against; it also names the transaction (one statement rather than two: each costs
//!   the database an executor start and the client a message, on every batch).
//!
//! A create's seq is not read here: it is its creation event's, which the feed head
//! hands out in the write flight (`flush.rs`).

use std::collections::HashMap;
use std::sync::LazyLock;

use deadpool_postgres::ClientWrapper;
use opsd_domain::lease::{ClaimRequest, HeldLease};
use opsd_domain::{Operation, micros};
use opsd_store::{Clock, Result, rules};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::Failure;
use super::flight::{self, Step};
use crate::rows::{self, DB_NOW_MICROS, LEASE_COLUMNS, OPERATION_COLUMNS, code, from_micros};
use opsd_store::write::Write;

/// An operation row as the batch read it (and, once decided, as the batch leaves it).
pub struct Current {
    pub op: Operation,
    pub lease: Option<HeldLease>,
}

/// Which claims read the same candidates: those with the same filters.
#[derive(PartialEq, Eq, Hash, Clone)]
pub struct ClaimFilter {
    statuses: Vec<i16>,
    project_id: Option<String>,
    kinds: Vec<i16>,
}

impl ClaimFilter {
    pub fn of(request: &ClaimRequest) -> Self {
        Self {
            statuses: request.statuses.iter().map(|s| code(*s)).collect(),
            project_id: request.project_id.clone(),
            kinds: request.kinds.iter().map(|k| code(*k)).collect(),
        }
    }
}

/// Earlier creates by `(project_id, request_id)`: their id and body fingerprint.
pub type Requests = HashMap<(String, String), (Uuid, Option<Vec<u8>>)>;

/// Everything a batch read.
pub struct Loaded {
    /// The time the batch stamps.
    pub now: OffsetDateTime,
    /// Whether `now` is later than every stamp committed when the batch read, so that
    /// no time the batch carries over equals it and the write flight may move the times
    /// it set to a later feed head (`feed::restamped`).
    pub may_restamp: bool,
    /// Every operation row read, by id.
    pub rows: HashMap<Uuid, Current>,
    /// Earlier creates with the batch's request ids.
    pub requests: Requests,
    /// Claim candidates per filter, oldest first.
    pub claimable: HashMap<ClaimFilter, Vec<Uuid>>,
    /// Per lease-expiry write, in batch order: the operations whose lease ran out.
    pub expiring: Vec<Vec<Uuid>>,
    /// Per retention write, in batch order: the operations it may delete.
    pub purgeable: Vec<Vec<Uuid>>,
}

static LOCK_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {LEASE_COLUMNS} FROM operations WHERE id = ANY($1::uuid[]) \
         ORDER BY seq FOR UPDATE",
        *OPERATION_COLUMNS
    )
});

/// The operation holding each create's idempotency key, found by the key's hash as the
/// unique index holds it (migration 0020), with the `request_id` asked for: an operation
/// whose own `request_id` differs shares the hash, and its key is taken all the same.
static REQUESTS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, o.lease_token_hash, o.lease_worker, o.lease_expires_at, \
         o.lease_duration_ms, o.request_hash, r.request_id FROM operations o \
         JOIN unnest($1::text[], $2::text[]) AS r(project_id, request_id) \
         ON o.project = (SELECT n FROM projects WHERE name = r.project_id) \
         AND hashtextextended(o.request_id, 0) = hashtextextended(r.request_id, 0) \
         WHERE o.request_id IS NOT NULL",
        rows::columns_of("o")
    )
});

static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {LEASE_COLUMNS} FROM operations \
         WHERE status = ANY($1::smallint[]) AND status IN (0, 4) \
         AND ($2::text IS NULL OR project = (SELECT n FROM projects WHERE name = $2)) \
         AND (cardinality($3::smallint[]) = 0 OR kind = ANY($3)) \
         ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED",
        *OPERATION_COLUMNS
    )
});

static EXPIRE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {LEASE_COLUMNS} FROM operations \
         WHERE lease_expires_at IS NOT NULL AND lease_expires_at <= COALESCE($1, {DB_NOW_MICROS}) \
         ORDER BY lease_expires_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED",
        *OPERATION_COLUMNS
    )
});

const PURGE_SQL: &str = "SELECT id FROM operations WHERE ended_at IS NOT NULL \
     AND ended_at < $1 AND status IN (2, 3) ORDER BY ended_at, seq LIMIT $2 \
     FOR UPDATE SKIP LOCKED";

/// The head's stamp and the clock, the transaction's id (`outcome.rs`: to ask about it
/// if the answer to its COMMIT is lost).
static LAST_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT stamp, {DB_NOW_MICROS}, pg_current_xact_id()::text FROM feed_head WHERE id = 1")
});

/// What one read of the flight is for.
enum Read {
    Locked,
    Requests,
    Claim(ClaimFilter),
    Expire,
    Purge,
    Last,
}

/// The parameters of the flight, owned here so the steps can borrow them.
#[derive(Default)]
struct Params {
    ids: Vec<Uuid>,
    request_projects: Vec<String>,
    request_ids: Vec<String>,
    claims: Vec<(ClaimFilter, i64)>,
    expiries: Vec<i64>,
    purges: Vec<(i64, i64)>,
    clock_now: Option<i64>,
}

impl Params {
    fn of(writes: &[&Write], clock: Option<&Clock>) -> Self {
        let mut p = Params {
            clock_now: clock.map(|c| micros(c())),
            ..Params::default()
        };
        let claims = writes
            .iter()
            .filter(|w| matches!(w, Write::Claim(_)))
            .count();
        let claims = i64::try_from(claims).unwrap_or(i64::MAX);
        for write in writes {
            match write {
                Write::Create(new) => {
                    if let Some(request_id) = &new.request_id {
                        p.request_projects.push(new.project_id.clone());
                        p.request_ids.push(request_id.clone());
                    }
                }
                Write::Update { id, .. }
                | Write::Heartbeat { id, .. }
                | Write::Cancel(id)
                | Write::Delete(id) => {
                    p.ids.push(*id);
                }
                Write::Claim(request) => {
                    // Every claim of the batch may take a row from the same candidates,
                    // so each filter reads as many as the batch has claims.
                    let filter = ClaimFilter::of(request);
                    if !p.claims.iter().any(|(f, _)| *f == filter) {
                        p.claims.push((filter, claims));
                    }
                }
                Write::ExpireLeases { limit } => {
                    p.expiries.push(i64::try_from(*limit).unwrap_or(i64::MAX));
                }
                Write::Purge { before, batch_size } => p.purges.push((
                    micros(*before),
                    i64::try_from(*batch_size).unwrap_or(i64::MAX),
                )),
                Write::CreateKey { .. }
                | Write::RevokeKey(_)
                | Write::CreateSession { .. }
                | Write::EndSession { .. }
                | Write::Probe => {}
            }
        }
        p.ids.sort_unstable();
        p.ids.dedup();
        p
    }
}

/// Opens the batch's transaction and reads what `writes` need, in one round trip (plus
/// one the first time a connection prepares these statements), with the transaction's
/// id (to find out whether it committed if the answer to its COMMIT is lost,
/// `outcome.rs`). On an error the transaction is left open: the caller rolls it back.
pub async fn load(
    client: &ClientWrapper,
    writes: &[&Write],
    clock: Option<&Clock>,
) -> std::result::Result<(Loaded, String), Failure> {
    let p = Params::of(writes, clock);
    let statements = flight::prepare(
        client,
        &[
            &LOCK_SQL,
            &REQUESTS_SQL,
            &CLAIM_SQL,
            &EXPIRE_SQL,
            PURGE_SQL,
            &LAST_SQL,
        ],
    )
    .await
    .map_err(Failure::of("prepare batch reads"))?;
    let [lock, requests, claim, expire, purge, last] = &statements[..] else {
        return Err(Failure::Statement(opsd_store::StoreError::Internal(
            "prepared a different number of statements".into(),
        )));
    };
    let mut steps = vec![Step::Simple(rows::BEGIN_GENERIC)];
    let mut reads = Vec::new();
    let mut read = |step, what| {
        steps.push(step);
        reads.push(what);
    };
    if !p.ids.is_empty() {
        read(Step::Query(lock.clone(), vec![&p.ids]), Read::Locked);
    }
    if !p.request_ids.is_empty() {
        read(
            Step::Query(requests.clone(), vec![&p.request_projects, &p.request_ids]),
            Read::Requests,
        );
    }
    for (filter, limit) in &p.claims {
        let params: Vec<&(dyn ToSql + Sync)> =
            vec![&filter.statuses, &filter.project_id, &filter.kinds, limit];
        read(
            Step::Query(claim.clone(), params),
            Read::Claim(filter.clone()),
        );
    }
    for limit in &p.expiries {
        read(
            Step::Query(expire.clone(), vec![&p.clock_now, limit]),
            Read::Expire,
        );
    }
    for (before, limit) in &p.purges {
        read(Step::Query(purge.clone(), vec![before, limit]), Read::Purge);
    }
    read(Step::Query(last.clone(), vec![]), Read::Last);

    let mut answers = flight::send(client, &steps).await.into_iter();
    answers
        .next()
        .transpose()
        .map_err(Failure::of("begin write transaction"))?;
    let mut loaded = Loaded {
        now: OffsetDateTime::UNIX_EPOCH,
        may_restamp: false,
        rows: HashMap::new(),
        requests: HashMap::new(),
        claimable: HashMap::new(),
        expiring: Vec::new(),
        purgeable: Vec::new(),
    };
    let mut xact = String::new();
    for (what, answer) in reads.into_iter().zip(answers) {
        let rows = answer.map_err(Failure::of("read batch rows"))?;
        match what {
            Read::Locked => {
                for row in &rows {
                    keep(&mut loaded, row)?;
                }
            }
            Read::Requests => {
                for row in &rows {
                    let id = keep(&mut loaded, row)?;
                    let project_id = loaded.rows[&id].op.project_id.clone();
                    let hash: Option<Vec<u8>> = row
                        .try_get(rows::OPERATION_COLUMN_COUNT + 4)
                        .map_err(Failure::of("read request hash"))?;
                    let asked: String = row
                        .try_get(rows::OPERATION_COLUMN_COUNT + 5)
                        .map_err(Failure::of("read request id"))?;
                    // Under another request id (a hash collision) the fingerprint, which
                    // covers the request id, differs: the create is refused as a reuse.
                    loaded.requests.insert((project_id, asked), (id, hash));
                }
            }
            Read::Claim(filter) => {
                let ids = rows
                    .iter()
                    .map(|row| keep(&mut loaded, row))
                    .collect::<Result<Vec<_>>>()?;
                loaded.claimable.insert(filter, ids);
            }
            Read::Expire => {
                let ids = rows
                    .iter()
                    .map(|row| keep(&mut loaded, row))
                    .collect::<Result<Vec<_>>>()?;
                loaded.expiring.push(ids);
            }
            Read::Purge => {
                let ids = rows
                    .iter()
                    .map(|row| rows::uuid_at(row, 0))
                    .collect::<Result<Vec<_>>>()?;
                loaded.purgeable.push(ids);
            }
            Read::Last => {
                let row =
                    rows.first()
                        .ok_or(Failure::Statement(opsd_store::StoreError::Internal(
                            "the feed head row is missing".into(),
                        )))?;
                let previous = from_micros(row.get(0)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let db_now = from_micros(row.get(1)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let clock_now = p.clock_now.and_then(from_micros).unwrap_or(db_now);
                loaded.now = rules::next_stamp(clock_now, previous);
                loaded.may_restamp = loaded.now > previous;
                xact = row.get(2);
            }
        }
    }
    Ok((loaded, xact))
}

/// Keeps the operation of `row` (the first read of a row wins: it is the locked one, and
/// no other transaction can change a locked row before the batch ends).
fn keep(loaded: &mut Loaded, row: &Row) -> Result<Uuid> {
    let op = rows::operation(row)?;
    let id = op.id;
    if let std::collections::hash_map::Entry::Vacant(slot) = loaded.rows.entry(id) {
        let lease = rows::lease(row)?;
        slot.insert(Current { op, lease });
    }
    Ok(id)
}
