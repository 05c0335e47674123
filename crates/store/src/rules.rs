//! The write rules every backend applies identically. A backend loads rows, calls one of
//! these pure functions with the time of its transaction, and stores what comes back;
//! it never decides on its own whether a change is allowed. That keeps the two backends
//! byte-for-byte alike on the wire: the idempotency comparison, the order of the checks
//! on an update (lease, then version, then the state machine), what a heartbeat or a
//! claim or an expiry changes, and how lease tokens are made.

use std::sync::Arc;

use opsd_domain::lease::{self, ClaimRequest, HeldLease};
use opsd_domain::{ChangeError, NewOperation, Operation, Patch, state_machine};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Heartbeat, Preconditions, Result, StoreError};

/// Source of "now" for the timestamps a store writes; tests substitute a coarse or fixed
/// clock.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The wall clock, to the microsecond.
pub fn wall_clock() -> Clock {
    Arc::new(opsd_domain::now)
}

/// The time a write transaction stamps: the clock truncated to the microseconds a store
/// keeps, but never before the previous stamp, so `created_at`/`updated_at` never go
/// backwards even when the clock does (and a keyset walk never misses a late row).
pub fn next_stamp(clock_now: OffsetDateTime, previous: OffsetDateTime) -> OffsetDateTime {
    opsd_domain::truncate_micros(clock_now).max(previous)
}

/// Lowercase hex SHA-256 of `s`: how request bodies and lease tokens are stored.
pub fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes kept of a create's idempotency fingerprint. It only tells a retry (same body)
/// from a different request reusing the `request_id`, in one project: 128 bits make an
/// accidental match impossible in practice, and the full 256 would cost every operation
/// row 16 more bytes.
pub const REQUEST_HASH_BYTES: usize = 16;

/// The idempotency fingerprint of a create: the first [`REQUEST_HASH_BYTES`] of the
/// SHA-256 of its canonical body (maps sorted), present only when the request names a
/// `request_id`.
pub fn request_hash(new: &NewOperation) -> Option<Vec<u8>> {
    new.request_id
        .as_ref()
        .map(|_| Sha256::digest(new.canonical_json().as_bytes())[..REQUEST_HASH_BYTES].to_vec())
}

/// What a create does when `(project_id, request_id)` already names an operation
/// (`existing`: its id and stored body hash): the same body replays it (`Some(id)`), a
/// different body is a conflict. `None` means "insert a new operation".
pub fn idempotent_replay(
    new: &NewOperation,
    hash: Option<&[u8]>,
    existing: Option<(Uuid, Option<Vec<u8>>)>,
) -> Result<Option<Uuid>> {
    let (Some(request_id), Some((id, stored))) = (&new.request_id, existing) else {
        return Ok(None);
    };
    if stored.as_deref() != hash {
        return Err(StoreError::IdempotencyConflict {
            request_id: request_id.clone(),
            existing: id,
        });
    }
    Ok(Some(id))
}

/// The result of an update that passed every check.
#[derive(Debug)]
pub struct Updated {
    /// The operation after the change.
    pub next: Operation,
    /// The lease must be removed (the change moved the operation out of `running`).
    pub release_lease: bool,
}

/// An update: the lease admits the caller first (so a stale worker learns about its
/// lease, not about a version), then the expected version, then the state machine.
pub fn update(
    current: &Operation,
    held: Option<&HeldLease>,
    patch: &Patch,
    pre: &Preconditions,
    now: OffsetDateTime,
) -> Result<Updated> {
    authorize_lease(held, pre.lease_token.as_deref(), now)?;
    if let Some(expected) = pre.expected_version
        && expected != current.version
    {
        return Err(StoreError::VersionMismatch {
            expected,
            current: current.version,
        });
    }
    let next = state_machine::apply(current, patch, now)?;
    let release_lease = held.is_some() && !lease::survives(next.status);
    Ok(Updated {
        next,
        release_lease,
    })
}

/// Whether a request carrying `token` may change an operation holding `held`.
pub fn authorize_lease(
    held: Option<&HeldLease>,
    token: Option<&str>,
    now: OffsetDateTime,
) -> Result<()> {
    let given = token.map(hex_sha256);
    Ok(lease::authorize(held, given.as_deref(), now)?)
}

/// A claim of `current`: the operation moved to `running`, the lease to store and the
/// token to hand to the worker (the store keeps only its hash).
#[derive(Debug)]
pub struct Claim {
    /// The operation after the claim.
    pub next: Operation,
    /// The lease to store.
    pub lease: HeldLease,
    /// The secret for the worker.
    pub token: String,
}

/// Claims `current` for `request.worker`.
pub fn claim(current: &Operation, request: &ClaimRequest, now: OffsetDateTime) -> Result<Claim> {
    let next = state_machine::apply(current, &lease::claim_patch(&request.worker), now)?;
    let token = new_lease_token();
    let lease = HeldLease::grant(
        hex_sha256(&token),
        request.worker.clone(),
        request.lease,
        now,
    );
    Ok(Claim { next, lease, token })
}

/// A heartbeat that passed its checks.
#[derive(Debug)]
pub struct Beat {
    /// The lease with its expiry pushed back.
    pub renewed: HeldLease,
    /// The operation's new version, when the heartbeat carried progress or a message.
    /// A bare heartbeat is not a change: no version, no event, nothing on the feed, so
    /// a busy fleet of workers does not flood histories and watch streams.
    pub next: Option<Operation>,
}

/// A heartbeat on `current`, which holds `held`.
pub fn heartbeat(
    current: &Operation,
    held: Option<&HeldLease>,
    heartbeat: &Heartbeat,
    now: OffsetDateTime,
) -> Result<Beat> {
    authorize_lease(held, Some(&heartbeat.lease_token), now)?;
    let held = held.ok_or(StoreError::Internal("authorized without a lease".into()))?;
    let renewed = held.renewed(now);
    if heartbeat.progress.is_none() && heartbeat.status_message.is_none() {
        return Ok(Beat {
            renewed,
            next: None,
        });
    }
    let patch = Patch {
        progress: heartbeat.progress,
        status_message: heartbeat.status_message.clone(),
        ..Patch::default()
    };
    let next = state_machine::apply(current, &patch, now)?;
    Ok(Beat {
        renewed,
        next: Some(next),
    })
}

/// What an expired lease does to `current`: `unknown`, naming the worker. Leases live
/// only while running, which may always become unknown, so an error here is a bug the
/// caller logs (and drops the stale lease rather than retrying it forever).
pub fn expire(
    current: &Operation,
    held: &HeldLease,
    now: OffsetDateTime,
) -> Result<Operation, ChangeError> {
    state_machine::apply(current, &lease::expiry_patch(held), now)
}

/// A fresh lease token: 244 random bits as 64 hex characters.
pub fn new_lease_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}
