//! Worker leases over HTTP: `POST /v1/operations/claim` takes the oldest matching
//! operation and leases it to the caller; `POST /v1/operations/{id}/heartbeat` renews
//! the lease (and may report progress). Rules are the domain's `lease` module.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use opsd_domain::lease::ClaimRequest;
use opsd_domain::{Kind, ProjectScope, Role, Status, ValidationError, validate};
use opsd_store::Heartbeat;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ErrorBody, Result};
use crate::http::extract::{NoQuery, RawPath, ValidJson};
use crate::http::nirvana::models::OperationOut;
use crate::http::nirvana::operations::{load_visible, with_etag};

/// Body of `POST /v1/operations/claim`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimIn {
    /// Claim only from this project; any project when absent.
    pub project_id: Option<String>,
    /// Claim only these kinds; any kind when absent or empty.
    pub kinds: Option<Vec<Kind>>,
    /// Claim from these statuses: `pending` (default) and/or `unknown` (reconcilers).
    pub statuses: Option<Vec<Status>>,
    /// How long the lease lasts without a heartbeat, 1–3600.
    pub lease_seconds: u64,
    /// Who is claiming (`[A-Za-z0-9._:/@-]`, ≤ 128); named when the lease expires.
    pub worker: String,
}

/// A claimed operation and its lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimOut {
    /// The operation, now `running`.
    pub operation: OperationOut,
    /// Send it with heartbeats and updates. Only a hash is stored: keep it.
    pub lease_token: String,
    /// When the lease runs out unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: OffsetDateTime,
}

/// Body of `POST /v1/operations/{operation_id}/heartbeat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatIn {
    /// The token the claim returned.
    pub lease_token: String,
    /// New progress, 0–100, never lower than the current one.
    pub progress: Option<i64>,
    /// New status message.
    pub status_message: Option<String>,
}

/// A renewed lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatOut {
    /// The operation (a new version only if progress or a message was sent).
    pub operation: OperationOut,
    /// The new expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: OffsetDateTime,
}

/// Claim the oldest matching operation and lease it.
#[utoipa::path(
    post, path = "/v1/operations/claim", tag = "live", request_body = ClaimIn,
    responses(
        (status = 200, body = ClaimOut, description = "The operation, moved to running, and its lease"),
        (status = 204, description = "Nothing to claim"),
        (status = 400, body = ErrorBody),
    )
)]
pub async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
    ValidJson(body): ValidJson<ClaimIn>,
) -> Result<Response> {
    caller.require(Role::Producer)?;
    match (&body.project_id, &caller.0.projects) {
        (Some(project), _) => caller.require_project(Role::Producer, project)?,
        (None, ProjectScope::All) => {}
        // A key limited to some projects must say which one it works for, so that a
        // claim can never hand it another tenant's operation.
        (None, ProjectScope::Only(_)) => {
            return Err(ValidationError::new(
                "project_id",
                "is required for a key limited to some projects",
            )
            .into());
        }
    }
    let request = ClaimRequest {
        project_id: body.project_id,
        kinds: body.kinds.unwrap_or_default(),
        statuses: body.statuses.unwrap_or_else(|| vec![Status::Pending]),
        lease: Duration::from_secs(body.lease_seconds),
        worker: body.worker,
    };
    request.validate()?;
    let Some(claimed) = state.store.claim(request).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let version = claimed.operation.version;
    let out = ClaimOut {
        operation: claimed.operation.into(),
        lease_token: claimed.lease_token,
        lease_expires_at: claimed.lease_expires_at,
    };
    Ok(with_etag(version, Json(out)).into_response())
}

/// Renew a lease, optionally reporting progress.
#[utoipa::path(
    post, path = "/v1/operations/{operation_id}/heartbeat", tag = "live", request_body = HeartbeatIn,
    params(("operation_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = HeartbeatOut),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The lease is not held with this token (lease_mismatch, lease_not_held, lease_expired), or progress decreased"),
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    path: RawPath,
    _: NoQuery,
    ValidJson(body): ValidJson<HeartbeatIn>,
) -> Result<impl IntoResponse> {
    let id = load_visible(&state, &caller, Role::Producer, path)
        .await?
        .id;
    let progress = body
        .progress
        .map(|p| {
            u8::try_from(p)
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| ValidationError::new("progress", "must be between 0 and 100"))
        })
        .transpose()?;
    validate::opt_text(
        "status_message",
        body.status_message.as_deref(),
        validate::MAX_TEXT_LEN,
    )?;
    if body.lease_token.is_empty() {
        return Err(ValidationError::new("lease_token", "is required").into());
    }
    let heartbeat = Heartbeat {
        lease_token: body.lease_token,
        progress,
        status_message: body.status_message,
    };
    let renewed = state.store.heartbeat(id, heartbeat).await?;
    let version = renewed.operation.version;
    Ok(with_etag(
        version,
        Json(HeartbeatOut {
            operation: renewed.operation.into(),
            lease_expires_at: renewed.lease_expires_at,
        }),
    ))
}
