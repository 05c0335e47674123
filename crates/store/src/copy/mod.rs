//! Copying a whole store into another, across backends (`opsd copy`). Each backend reads
//! and writes the neutral rows below behind [`CopySource`] and [`CopyTarget`] (its own
//! SQL); the passes, resumption and verification are here, once.
//!
//! **How a pass works.** The source's history drives it: events are read in seq order
//! (commit order) after the last one copied, in batches. For each batch the source's
//! current rows of the operations those events touch are read, and the target applies
//! the batch in one transaction: it inserts new operations (in creation order, ties by
//! their old seq) or updates known ones, appends the events under new seqs in the same
//! order, and records the last source seq copied. An operation is created by an event,
//! so every operation is reached; an operation changed after the previous pass has an
//! event after it, so a later pass brings it up to date.
//!
//! **Resuming.** The target remembers the source's epoch and the last source event seq
//! it applied, committed with each batch: a copy killed at any point resumes after the
//! last committed batch. Until the copy's final pass ends, the target is marked as being
//! copied into and refuses to be served.
//!
//! **Seqs.** The target numbers operations and events itself, in the order they arrive
//! (which is commit order, and on both backends the order of their timestamps), under a
//! new epoch: event ids from the source's epoch get a reset from the target.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{Result, StoreError};

mod sql;
mod verify;

pub use sql::*;
pub use verify::{Fingerprint, fingerprint};

/// Events read from the source per batch (one target transaction), by default.
pub const BATCH: usize = 2_000;

/// An operation row with every stored column, in the form both backends share.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct OperationRow {
    /// The operation's seq in the source (only to order and to find it again).
    pub seq: i64,
    pub id: Uuid,
    pub project: String,
    pub kind: i16,
    pub op_type: i16,
    pub resource_id: String,
    pub status: i16,
    pub progress: i16,
    pub status_message: Option<String>,
    pub description: Option<String>,
    pub details: String,
    pub error: Option<String>,
    pub warnings: String,
    pub http_error_status_code: Option<i16>,
    pub http_error_message: Option<String>,
    pub user: Option<String>,
    pub request_id: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub target_link: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub updated_at: i64,
    pub version: i64,
    pub lease_token_hash: Option<String>,
    pub lease_worker: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub lease_duration_ms: Option<i64>,
    pub cancel_requested: bool,
    /// The creating request's W3C traceparent (25 bytes), if it had one.
    pub trace_parent: Option<Vec<u8>>,
    pub trace_state: Option<String>,
}

/// A history event with every stored column; the operation named by id.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct EventRow {
    /// The event's seq in the source (the copy's resume point).
    pub seq: i64,
    pub operation_id: Uuid,
    pub project: String,
    pub version: i64,
    pub status: i16,
    pub progress: i16,
    pub status_message: Option<String>,
    pub at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub error: Option<String>,
    pub warnings: Option<String>,
    pub http_error_status_code: Option<i16>,
    pub http_error_message: Option<String>,
    pub cancel_requested: bool,
}

/// An API key row: the secret only as its hash.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub projects: String,
    pub key_hash: Vec<u8>,
    pub key_prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// How much a store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Operations.
    pub operations: u64,
    /// History events.
    pub events: u64,
    /// API keys, revoked ones included.
    pub keys: u64,
}

/// What a target knows of a copy into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The epoch of the source being copied.
    pub source_epoch: String,
    /// The last source event seq applied.
    pub after: i64,
    /// Whether a pass is unfinished (the target must not be served).
    pub copying: bool,
}

/// One batch for the target to apply in one transaction.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Current rows of the operations the events touch, in creation order.
    pub operations: Vec<OperationRow>,
    /// Events in source seq order.
    pub events: Vec<EventRow>,
    /// The last source event seq this batch covers.
    pub after: i64,
}

/// A store being copied from (read only).
#[async_trait]
pub trait CopySource: Send + Sync {
    /// The store's epoch.
    async fn epoch(&self) -> Result<String>;
    /// What it holds.
    async fn counts(&self) -> Result<Counts>;
    /// Every API key.
    async fn keys(&self) -> Result<Vec<KeyRow>>;
    /// Up to `limit` events after seq `after`, in seq order (events of operations no
    /// longer stored are left out).
    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<EventRow>>;
    /// The current rows of these operations (those still stored).
    async fn operations(&self, ids: &[Uuid]) -> Result<Vec<OperationRow>>;
}

/// A store being copied into (not served meanwhile).
#[async_trait]
pub trait CopyTarget: Send + Sync {
    /// What it holds.
    async fn counts(&self) -> Result<Counts>;
    /// Its API keys' ids and roles (to recognise a lone first admin key).
    async fn key_roles(&self) -> Result<Vec<(String, String)>>;
    /// The copy recorded in it, if any.
    async fn progress(&self) -> Result<Option<Progress>>;
    /// Starts (or resumes) a pass from `source_epoch`: marks the target as being copied
    /// into; on a first start also deletes its keys (`replace_keys`) and starts a new
    /// epoch. Returns the target's epoch.
    async fn begin(&self, source_epoch: &str, first: bool, replace_keys: bool) -> Result<String>;
    /// Applies a batch and records its progress, in one transaction.
    async fn apply(&self, batch: &Batch) -> Result<()>;
    /// Inserts or updates these keys (revocations included).
    async fn put_keys(&self, keys: &[KeyRow]) -> Result<()>;
    /// Ends a pass: the target may be served again.
    async fn finish(&self) -> Result<()>;
}

/// What a pass did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PassReport {
    /// Whether it continued an interrupted or earlier copy.
    pub resumed: bool,
    /// Source events applied in this pass.
    pub events: u64,
    /// The last source event seq applied.
    pub after: i64,
    /// The target's epoch.
    pub target_epoch: String,
    /// The lone first admin key of the target that the source's keys replaced.
    pub replaced_first_key: Option<String>,
}

/// Runs one pass from `source` into `target`, calling `progress(done, total)` per batch
/// (in source events). A target that holds anything but a copy of this source is
/// refused; a lone admin key (the first key an unused `serve` made) is replaced.
pub async fn pass(
    source: &dyn CopySource,
    target: &dyn CopyTarget,
    batch_size: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<PassReport> {
    let source_epoch = source.epoch().await?;
    let recorded = target.progress().await?;
    let mut report = PassReport::default();
    let mut after = match &recorded {
        Some(p) if p.source_epoch == source_epoch => {
            report.resumed = true;
            p.after
        }
        Some(p) => {
            return Err(refused(format!(
                "the target holds a copy of another store (epoch {}, the source's is \
                 {source_epoch}): copy into an empty store",
                p.source_epoch
            )));
        }
        None => {
            let counts = target.counts().await?;
            if counts.operations > 0 || counts.events > 0 {
                return Err(refused(format!(
                    "the target is not empty ({} operations, {} events): copy into an empty \
                     store",
                    counts.operations, counts.events
                )));
            }
            let keys = target.key_roles().await?;
            match keys.as_slice() {
                [] => {}
                [(id, role)] if role == "admin" => report.replaced_first_key = Some(id.clone()),
                _ => {
                    return Err(refused(format!(
                        "the target has {} API keys: an empty target has none, or only the \
                         first admin key that `opsd serve` created",
                        keys.len()
                    )));
                }
            }
            0
        }
    };
    report.target_epoch = target
        .begin(&source_epoch, recorded.is_none(), recorded.is_none())
        .await?;
    target.put_keys(&source.keys().await?).await?;
    let total = source.counts().await?.events;
    let mut done = 0;
    loop {
        let events = source.events_after(after, batch_size.max(1)).await?;
        let Some(last) = events.last() else {
            break;
        };
        let last_seq = last.seq;
        let mut ids: Vec<Uuid> = events.iter().map(|e| e.operation_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut operations = source.operations(&ids).await?;
        operations.sort_by_key(|o| (o.created_at, o.seq));
        let known: std::collections::HashSet<Uuid> = operations.iter().map(|o| o.id).collect();
        let events: Vec<EventRow> = events
            .into_iter()
            .filter(|e| known.contains(&e.operation_id))
            .collect();
        done += events.len() as u64;
        target
            .apply(&Batch {
                operations,
                events,
                after: last_seq,
            })
            .await?;
        after = last_seq;
        progress(done.min(total), total);
    }
    target.finish().await?;
    report.events = done;
    report.after = after;
    Ok(report)
}

fn refused(message: String) -> StoreError {
    StoreError::Invalid(opsd_domain::ValidationError::new("target", message))
}

/// `store_meta` keys of a copy's progress in its target.
pub mod meta {
    /// The source's epoch.
    pub const SOURCE_EPOCH: &str = "copy_source_epoch";
    /// The last source event seq applied.
    pub const AFTER: &str = "copy_after";
    /// `copying` while a pass runs (the store refuses to be served), else `done`.
    pub const STATE: &str = "copy_state";
    /// The value of [`STATE`] during a pass.
    pub const COPYING: &str = "copying";
}

/// The refusal of a store that a copy is filling.
pub fn being_copied_into() -> StoreError {
    StoreError::Internal(
        "this store is the target of an unfinished `opsd copy`: run the copy again to \
         finish it (it resumes), then serve"
            .into(),
    )
}
