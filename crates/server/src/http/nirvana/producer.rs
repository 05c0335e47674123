//! The producer API (docs/api.md, "The rules a producer meets"): control-plane services create operations (idempotent by
//! `request_id`), move them through the state machine (optionally conditional on the
//! version), and read their history.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opsd_domain::{ProjectScope, Role, ValidationError};
use opsd_store::Preconditions;

use super::models::{EventList, EventOut, OperationIn, OperationOut, OperationPatch};
use super::operations::{load_visible, not_found, with_etag};
use crate::http::AppState;
use crate::http::auth::{Caller, Producer};
use crate::http::error::{ErrorBody, Result};
use crate::http::extract::{NoQuery, RawPath, ValidJson, uuid_param};
use crate::http::refusals::{BadOperationIdOrQuery, NoSuchOperation};

/// Create an operation (status `pending`).
#[utoipa::path(
    post, path = "/v1/operations", tag = "producer", request_body = OperationIn, operation_id = "createOperation",
    responses(
        (status = 201, body = OperationOut, description = "Created", headers(
            ("Location" = String, description = "`/v1/operations/<id>`"),
            ("ETag" = String, description = "The version, quoted"))),
        (status = 200, body = OperationOut, description = "A retry with the same request_id and body: the first operation", headers(
            ("Location" = String, description = "`/v1/operations/<id>`"),
            ("ETag" = String, description = "The version, quoted"))),
        (status = 400, body = ErrorBody, description = "A field broke its rule (`field` names it)"),
        (status = 403, body = ErrorBody, description = "The key is a reader, or may not write this project"),
        (status = 409, body = ErrorBody, description = "`idempotency_conflict`: request_id reused with a different body (on PostgreSQL also one whose 64-bit hash another request_id of the project holds)"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Producer(caller): Producer,
    _: NoQuery,
    ValidJson(body): ValidJson<OperationIn>,
) -> Result<Response> {
    let mut new = body.into_new()?;
    caller.require_project(Role::Producer, &new.project_id)?;
    // Who asked for the change: the producer may say; otherwise it is the key's name.
    new.user.get_or_insert_with(|| caller.0.name.clone());
    new.trace_context = crate::http::request_id::creation_context();
    let created = state.store.create(new).await?;
    let op = created.operation;
    if created.created {
        tracing::info!(operation = %op.id, project = %op.project_id, by = %caller.0.name, "operation created");
    }
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/operations/{}", op.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        status,
        headers,
        with_etag(op.version, Json(OperationOut::from(op))),
    )
        .into_response())
}

/// Update an operation's status, progress, message, error or warnings.
#[utoipa::path(
    patch, path = "/v1/operations/{operation_id}", tag = "producer", request_body = OperationPatch, operation_id = "updateOperation",
    params(
        ("operation_id" = uuid::Uuid, Path, description = "Operation id"),
        ("If-Match" = Option<String>, Header, description = "Apply only at this version: `\"3\"` (quotes optional), or `*` for any",
         pattern = "^(\\*|\"[0-9]{1,19}\"|[0-9]{1,19})$"),
    ),
    responses(
        (status = 200, body = OperationOut, description = "The operation after the change", headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, body = ErrorBody, description = "A field broke its rule (`field` names it), or If-Match and expected_version disagree"),
        (status = 403, body = ErrorBody, description = "The key is a reader"),
        NoSuchOperation,
        (status = 409, body = ErrorBody, description = "The state machine forbids the change, or the operation is leased and the lease_token is missing or wrong"),
        (status = 412, body = ErrorBody, description = "The operation is not at the expected version"),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Producer(caller): Producer,
    path: RawPath,
    headers: HeaderMap,
    _: NoQuery,
    ValidJson(body): ValidJson<OperationPatch>,
) -> Result<impl IntoResponse> {
    let id = uuid_param(path, "operation_id")?;
    if let Some(token) = &body.lease_token {
        opsd_domain::validate::lease_token("lease_token", token)?;
    }
    let lease_token = body.lease_token.clone();
    let (patch, body_version) = body.into_patch()?;
    let expected = match (if_match(&headers)?, body_version) {
        (Some(h), Some(b)) if h != b => {
            return Err(ValidationError::new(
                "expected_version",
                "disagrees with the If-Match header",
            )
            .into());
        }
        (h, b) => h.or(b),
    };
    let pre = Preconditions {
        expected_version: expected,
        lease_token,
    };
    // A key scoped to some projects reads the operation first: one in another project is
    // a 404, as if it did not exist. A key for every project skips that read (a store
    // read per transition); the store's own 404 answers for a missing operation.
    if !matches!(caller.0.projects, ProjectScope::All) {
        let op = state.store.get(id).await?.ok_or_else(|| not_found(id))?;
        caller.require_operation(Role::Producer, &op)?;
    }
    let op = state.store.update_with(id, patch, pre).await?;
    opsd_store::trace::link_to_creation(op.trace_context.as_ref());
    Ok(with_etag(op.version, Json(OperationOut::from(op))))
}

/// Reads `If-Match: "<version>"` (quotes optional; `*` means any version).
fn if_match(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let rule = || ValidationError::new("If-Match", "must be a version in quotes, e.g. \"3\"");
    let s = raw.to_str().map_err(|_| rule())?.trim();
    if s == "*" {
        return Ok(None);
    }
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    inner.parse().map(Some).map_err(|_| rule().into())
}

/// The operation's history, oldest first.
#[utoipa::path(
    get, path = "/v1/operations/{operation_id}/events", tag = "producer", operation_id = "listOperationEvents",
    params(("operation_id" = uuid::Uuid, Path, description = "Operation id")),
    responses(
        (status = 200, body = EventList, description = "Every change, oldest first"),
        BadOperationIdOrQuery,
        NoSuchOperation,
    )
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    path: RawPath,
    _: NoQuery,
) -> Result<Json<EventList>> {
    let id = load_visible(&state, &caller, Role::Reader, path).await?.id;
    let events = state.store.events(id).await?;
    Ok(Json(EventList {
        items: events.into_iter().map(EventOut::from).collect(),
    }))
}

/// Ask to cancel an operation (as google.longrunning's `CancelOperation`).
///
/// A `pending` operation becomes `failed` with error code `CANCELLED` at once. A
/// `running` or `unknown` one gets `cancel_requested: true` (an event, a new version);
/// its worker sees the flag in heartbeat answers and ends it — `failed` with
/// `CANCELLED`, or `done` if it finished first. Asking again changes nothing.
#[utoipa::path(
    post, path = "/v1/operations/{operation_id}/cancel", tag = "producer",
    params(("operation_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = OperationOut, description = "The operation after the request: failed (it was pending) or flagged cancel_requested"),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "The key's role is not producer or admin"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "already_finished: the operation is done or failed (x-should-retry: false)"),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    path: RawPath,
    _: NoQuery,
) -> Result<impl IntoResponse> {
    let id = load_visible(&state, &caller, Role::Producer, path)
        .await?
        .id;
    let op = state.store.cancel(id).await?;
    tracing::info!(operation = %op.id, status = %op.status, by = %caller.0.name, "cancellation requested");
    Ok(with_etag(op.version, Json(OperationOut::from(op))))
}
