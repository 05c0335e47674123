//! The picture of a project that `GET /v1/operations/stats` serves and the console draws:
//! activity per minute by status, durations of finished operations by kind and type,
//! and what needs attention (runs longer than usual, leases about to run out). Computed
//! by the backend, so it costs a few indexed queries rather than a list walk.

use std::collections::HashMap;

use opsd_domain::{Kind, OpType, Status};
use time::OffsetDateTime;
use uuid::Uuid;

/// What to compute, and over which window.
#[derive(Debug, Clone)]
pub struct StatsRequest {
    /// The project.
    pub project_id: String,
    /// Start of the window (inclusive).
    pub since: OffsetDateTime,
    /// "Now", for running times and lease deadlines.
    pub now: OffsetDateTime,
}

/// A kind and type needs this many finished operations in the window before its p95
/// is trusted to call a running one "longer than usual".
pub const MIN_SAMPLES_FOR_USUAL: u64 = 5;

/// The computed picture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectStats {
    /// Per minute and status, operations that had a change leaving them in that status.
    pub per_minute: Vec<MinuteCount>,
    /// Run time of operations that finished in the window, by kind and type.
    pub durations: Vec<DurationStats>,
    /// Running operations running longer than the p95 of their kind and type.
    pub long_running: Vec<LongRunning>,
    /// Leases with less than half their duration left (a heartbeat seems missed).
    pub expiring_leases: Vec<ExpiringLease>,
}

/// One bar segment of the activity chart.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteCount {
    /// Start of the minute.
    pub minute: OffsetDateTime,
    /// The status changes left operations in.
    pub status: Status,
    /// Distinct operations.
    pub operations: u64,
}

/// Durations of one kind and type (nearest-rank percentiles).
#[derive(Debug, Clone, PartialEq)]
pub struct DurationStats {
    /// Kind.
    pub kind: Kind,
    /// Type.
    pub op_type: OpType,
    /// Operations finished (`done` or `failed`) in the window.
    pub finished: u64,
    /// Median run time in milliseconds.
    pub p50_ms: u64,
    /// 95th percentile run time in milliseconds.
    pub p95_ms: u64,
}

/// A running operation that has run longer than usual.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRunning {
    /// The operation.
    pub id: Uuid,
    /// Kind.
    pub kind: Kind,
    /// Type.
    pub op_type: OpType,
    /// When it started running.
    pub started_at: OffsetDateTime,
    /// How long it has run, in milliseconds.
    pub running_ms: u64,
    /// The p95 run time of its kind and type, in milliseconds.
    pub p95_ms: u64,
}

/// A lease close to running out.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiringLease {
    /// The operation.
    pub id: Uuid,
    /// Kind.
    pub kind: Kind,
    /// Type.
    pub op_type: OpType,
    /// The worker holding it.
    pub worker: String,
    /// When it runs out.
    pub expires_at: OffsetDateTime,
    /// Its full duration, in milliseconds.
    pub lease_ms: u64,
}

/// A project and how many operations it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectCount {
    /// The project.
    pub project_id: String,
    /// Operations stored in it.
    pub operations: u64,
}

/// Running operations examined for "longer than usual", oldest start first.
pub const RUNNING_SCAN: usize = 1_000;
/// Entries at most in each attention list.
pub const ATTENTION_LIMIT: usize = 50;

/// A running operation as the store reads it for [`long_running`].
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    /// The operation.
    pub id: Uuid,
    /// Kind.
    pub kind: Kind,
    /// Type.
    pub op_type: OpType,
    /// When it started running (its creation if it never did).
    pub started_at: OffsetDateTime,
}

/// The running operations (oldest start first) that have run longer than the p95 of
/// their kind and type, where at least [`MIN_SAMPLES_FOR_USUAL`] of those finished in
/// the window; at most [`ATTENTION_LIMIT`]. The same rule for every backend.
pub fn long_running(
    durations: &[DurationStats],
    running: impl IntoIterator<Item = Running>,
    now: OffsetDateTime,
) -> Vec<LongRunning> {
    let usual: HashMap<(Kind, OpType), u64> = durations
        .iter()
        .filter(|d| d.finished >= MIN_SAMPLES_FOR_USUAL)
        .map(|d| ((d.kind, d.op_type), d.p95_ms))
        .collect();
    running
        .into_iter()
        .filter_map(|r| {
            let p95_ms = *usual.get(&(r.kind, r.op_type))?;
            let running_ms =
                u64::try_from((now - r.started_at).whole_milliseconds().max(0)).unwrap_or(u64::MAX);
            (running_ms > p95_ms).then_some(LongRunning {
                id: r.id,
                kind: r.kind,
                op_type: r.op_type,
                started_at: r.started_at,
                running_ms,
                p95_ms,
            })
        })
        .take(ATTENTION_LIMIT)
        .collect()
}
