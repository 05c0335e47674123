//! `GET /v1/operations/{operation_id}/wait?timeout=30s`: answers as soon as the
//! operation is `done` or `failed`, or with its current state when the timeout passes.
//! The request sleeps on the waiters' registry (`crate::live::waiters`), woken by the
//! commit of the write; it reads the store once.

use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use opsd_domain::duration::{DEFAULT_WAIT, parse_wait_timeout};
use opsd_domain::{Operation, Role};
use uuid::Uuid;

use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ErrorBody, Result};
use crate::http::extract::{QueryParams, RawPath};
use crate::http::nirvana::models::OperationOut;
use crate::http::nirvana::operations::{load_visible, not_found, with_etag};

/// Wait for an operation to finish.
#[utoipa::path(
    get, path = "/v1/operations/{operation_id}/wait", tag = "live", operation_id = "waitOperation",
    params(
        ("operation_id" = Uuid, Path, description = "Operation id"),
        ("timeout" = Option<String>, Query, description = "How long to wait, 0–120 s: `30s`, `2m`, `1m30s` or `500ms`; default 60s", pattern = "^(([0-9]|[1-9][0-9]|1[01][0-9]|120)s|[0-2]m|1m([0-9]|[1-5][0-9])s|([0-9]|[1-9][0-9]{1,4}|1[01][0-9]{4}|120000)ms)$"),
    ),
    responses(
        (status = 200, body = OperationOut, description = "The operation: done or failed, or its current state when the timeout passed",
         headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, body = ErrorBody, description = "`operation_id` is not a UUID, or `timeout` breaks its rule"),
        (status = 404, body = ErrorBody, description = "No such operation, or one the key may not see"),
    )
)]
pub async fn wait(
    State(state): State<AppState>,
    caller: Caller,
    path: RawPath,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse> {
    // Visibility is checked before waiting: a hidden operation answers 404 at once, as a
    // missing one does, so the time to answer reveals nothing either.
    let id = load_visible(&state, &caller, Role::Reader, path).await?.id;
    let q = QueryParams::parse(raw.as_deref(), &["timeout"])?;
    let timeout = q
        .get("timeout")
        .map(|t| parse_wait_timeout("timeout", t))
        .transpose()?
        .unwrap_or(DEFAULT_WAIT);
    let op = wait_for_operation(&state, id, timeout).await?;
    Ok(with_etag(op.version, Json(OperationOut::from(op))))
}

/// Waits up to `timeout` for operation `id` to finish; the operation as it then is.
/// Shared by every dialect's wait endpoint (the Google dialect renders it its own way).
pub async fn wait_for_operation(
    state: &AppState,
    id: Uuid,
    timeout: Duration,
) -> Result<Operation> {
    state
        .live
        .waiters
        .wait(&*state.store, id, timeout, state.live.shutdown_signal())
        .await?
        .ok_or_else(|| not_found(id))
}
