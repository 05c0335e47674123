//! Read endpoints for people's tools (the console draws them; scripts can use them too):
//! the projects a key may see, and the picture of a project (`Store::stats`).

use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use opsd_domain::{Kind, OpType, ProjectScope, Role, Status, ValidationError, validate};
use opsd_store::stats::{self, StatsRequest};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::error::{ErrorBody, Result};
use super::extract::{NoQuery, QueryParams};

/// Longest window the stats cover.
const MAX_HOURS: u32 = 48;
/// Window when none is asked for.
const DEFAULT_HOURS: u32 = 6;

/// The projects a key may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    /// By project id.
    pub items: Vec<ProjectOut>,
}

/// One project.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectOut {
    /// The project id.
    pub project_id: String,
    /// Operations stored in it now.
    pub operation_count: u64,
}

/// List Projects: the projects the key may see. A key limited to some projects gets
/// exactly those (with 0 for a project without operations); a key for all projects gets
/// every project that holds operations.
#[utoipa::path(
    get, path = "/v1/projects", tag = "console",
    responses((status = 200, body = ProjectList), (status = 401, body = ErrorBody))
)]
pub async fn projects(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> Result<Json<ProjectList>> {
    caller.require(Role::Reader)?;
    let stored = state.store.projects().await?;
    let items = match &caller.0.projects {
        ProjectScope::All => stored
            .into_iter()
            .map(|p| ProjectOut {
                project_id: p.project_id,
                operation_count: p.operations,
            })
            .collect(),
        ProjectScope::Only(listed) => listed
            .iter()
            .map(|id| ProjectOut {
                project_id: id.clone(),
                operation_count: stored
                    .iter()
                    .find(|p| &p.project_id == id)
                    .map_or(0, |p| p.operations),
            })
            .collect(),
    };
    Ok(Json(ProjectList { items }))
}

/// The picture of a project.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsOut {
    /// The project.
    pub project_id: String,
    /// Start of the window.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// End of the window (now).
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// For each minute with activity and each status: how many distinct operations had a
    /// change that left them in that status (`pending`: created).
    pub per_minute: Vec<MinuteOut>,
    /// Run time (first `running`, or creation, to the end) of operations that finished in
    /// the window, by kind and type; nearest-rank percentiles.
    pub durations: Vec<DurationOut>,
    /// Running operations that have run longer than the p95 of their kind and type (when
    /// at least 5 of that kind and type finished in the window).
    pub long_running: Vec<LongRunningOut>,
    /// Leases with less than half their duration left: a heartbeat seems to be missing.
    pub expiring_leases: Vec<ExpiringLeaseOut>,
}

/// Activity in one minute.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteOut {
    /// Start of the minute.
    #[serde(with = "time::serde::rfc3339")]
    pub minute: OffsetDateTime,
    /// The status.
    pub status: Status,
    /// Distinct operations.
    pub operations: u64,
}

/// Durations of one kind and type.
#[derive(Debug, Serialize, ToSchema)]
pub struct DurationOut {
    /// Kind.
    pub kind: Kind,
    /// Type.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// Finished in the window.
    pub finished: u64,
    /// Median, milliseconds.
    pub p50_ms: u64,
    /// 95th percentile, milliseconds.
    pub p95_ms: u64,
}

/// A running operation past its usual run time.
#[derive(Debug, Serialize, ToSchema)]
pub struct LongRunningOut {
    /// Operation id.
    pub id: Uuid,
    /// Kind.
    pub kind: Kind,
    /// Type.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// When it started running.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Run time so far, milliseconds.
    pub running_ms: u64,
    /// The usual (p95) run time of its kind and type, milliseconds.
    pub p95_ms: u64,
}

/// A lease close to running out.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiringLeaseOut {
    /// Operation id.
    pub id: Uuid,
    /// Kind.
    pub kind: Kind,
    /// Type.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// The worker holding the lease.
    pub worker: String,
    /// When it runs out.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: OffsetDateTime,
    /// The lease's full duration, milliseconds.
    pub lease_ms: u64,
}

/// Operation Statistics: activity per minute by status, durations by kind and type
/// (p50/p95), and what needs attention, for one project over the last `hours`.
#[utoipa::path(
    get, path = "/v1/operations/stats", tag = "console",
    params(
        ("project_id" = String, Query, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description = "The project (required)"),
        ("hours" = Option<u32>, Query, minimum = 1, maximum = 48, description = "Window, 1–48 hours back from now; default 6"),
    ),
    responses(
        (status = 200, body = StatsOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<StatsOut>> {
    let q = QueryParams::parse(raw.as_deref(), &["project_id", "hours"])?;
    let project_id = q
        .get("project_id")
        .ok_or_else(|| ValidationError::new("project_id", "is required"))?
        .to_owned();
    validate::project_id("project_id", &project_id)?;
    caller.require_project(Role::Reader, &project_id)?;
    let hours = q
        .parse_with(
            "hours",
            "must be a whole number of hours from 1 to 48",
            |v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|h| (1..=MAX_HOURS).contains(h))
            },
        )?
        .unwrap_or(DEFAULT_HOURS);
    let now = opsd_domain::now();
    let since = now - Duration::from_secs(u64::from(hours) * 3600);
    let s = state
        .store
        .stats(&StatsRequest {
            project_id: project_id.clone(),
            since,
            now,
        })
        .await?;
    Ok(Json(render(project_id, since, now, s)))
}

fn render(
    project_id: String,
    from: OffsetDateTime,
    to: OffsetDateTime,
    s: stats::ProjectStats,
) -> StatsOut {
    StatsOut {
        project_id,
        from,
        to,
        per_minute: s
            .per_minute
            .into_iter()
            .map(|m| MinuteOut {
                minute: m.minute,
                status: m.status,
                operations: m.operations,
            })
            .collect(),
        durations: s
            .durations
            .into_iter()
            .map(|d| DurationOut {
                kind: d.kind,
                op_type: d.op_type,
                finished: d.finished,
                p50_ms: d.p50_ms,
                p95_ms: d.p95_ms,
            })
            .collect(),
        long_running: s
            .long_running
            .into_iter()
            .map(|l| LongRunningOut {
                id: l.id,
                kind: l.kind,
                op_type: l.op_type,
                started_at: l.started_at,
                running_ms: l.running_ms,
                p95_ms: l.p95_ms,
            })
            .collect(),
        expiring_leases: s
            .expiring_leases
            .into_iter()
            .map(|l| ExpiringLeaseOut {
                id: l.id,
                kind: l.kind,
                op_type: l.op_type,
                worker: l.worker,
                lease_expires_at: l.expires_at,
                lease_ms: l.lease_ms,
            })
            .collect(),
    }
}
