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
use crate::http::auth::Producer;
use crate::http::error::{ErrorBody, Result};
use crate::http::extract::{NoQuery, RawPath, ValidJson};
use crate::http::nirvana::models::OperationOut;
use crate::http::nirvana::operations::{load_visible, with_etag};
use crate::http::refusals::{FieldBrokeItsRule, NoSuchOperation};

/// Body of `POST /v1/operations/claim`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimIn {
    /// Claim only from this project; any project when absent (a key limited to some
    /// projects must name one).
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    pub project_id: Option<String>,
    /// Claim only these kinds; any kind when absent or empty.
    #[schema(max_items = 16)]
    pub kinds: Option<Vec<Kind>>,
    /// Claim from these statuses: `pending` (default) and/or `unknown` (reconcilers).
    #[schema(value_type = Option<Vec<ClaimableStatus>>, min_items = 1)]
    pub statuses: Option<Vec<Status>>,
    /// How long the lease lasts without a heartbeat, in seconds.
    #[serde(deserialize_with = "opsd_domain::strict_json::integer")]
    #[schema(minimum = 1, maximum = 3600)]
    pub lease_seconds: u64,
    /// Who is claiming; named when the lease expires.
    #[schema(pattern = "^[A-Za-z0-9._:/@-]{1,128}$")]
    pub worker: String,
}

/// The statuses a claim may take operations from.
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
enum ClaimableStatus {
    #[schema(rename = "pending")]
    Pending,
    #[schema(rename = "unknown")]
    Unknown,
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
    #[schema(min_length = 1, max_length = 128)]
    pub lease_token: String,
    /// New progress, never lower than the current one.
    #[serde(default, deserialize_with = "opsd_domain::strict_json::opt_integer")]
    #[schema(minimum = 0, maximum = 100)]
    pub progress: Option<i64>,
    /// New status message.
    #[schema(
        max_length = 4096,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
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
    post, path = "/v1/operations/claim", tag = "live", request_body = ClaimIn, operation_id = "claimOperation",
    responses(
        (status = 200, body = ClaimOut, description = "The operation, moved to running, and its lease",
         headers(("ETag" = String, description = "The operation's version, quoted"))),
        (status = 204, description = "Nothing to claim"),
        (status = 400, body = ErrorBody, description = "A field broke its rule, or a key limited to some projects named none"),
        (status = 403, body = ErrorBody, description = "The key is a reader, or may not write this project"),
    )
)]
pub async fn claim(
    State(state): State<AppState>,
    Producer(caller): Producer,
    _: NoQuery,
    ValidJson(body): ValidJson<ClaimIn>,
) -> Result<Response> {
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
    opsd_store::trace::link_to_creation(claimed.operation.trace_context.as_ref());
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
    post, path = "/v1/operations/{operation_id}/heartbeat", tag = "live", request_body = HeartbeatIn, operation_id = "heartbeatOperation",
    params(("operation_id" = uuid::Uuid, Path, description = "Operation id")),
    responses(
        (status = 200, body = HeartbeatOut, description = "The lease, renewed",
         headers(("ETag" = String, description = "The operation's version, quoted"))),
        FieldBrokeItsRule,
        (status = 403, body = ErrorBody, description = "The key is a reader"),
        NoSuchOperation,
        (status = 409, body = ErrorBody, description = "The lease is not held with this token (lease_mismatch, lease_not_held, lease_expired), or progress decreased"),
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    Producer(caller): Producer,
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
    validate::lease_token("lease_token", &body.lease_token)?;
    let heartbeat = Heartbeat {
        lease_token: body.lease_token,
        progress,
        status_message: body.status_message,
    };
    let renewed = state.store.heartbeat(id, heartbeat).await?;
    opsd_store::trace::link_to_creation(renewed.operation.trace_context.as_ref());
    let version = renewed.operation.version;
    Ok(with_etag(
        version,
        Json(HeartbeatOut {
            operation: renewed.operation.into(),
            lease_expires_at: renewed.lease_expires_at,
        }),
    ))
}
