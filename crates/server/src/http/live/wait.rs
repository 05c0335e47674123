//! `GET /v1/operations/{operation_id}/wait?timeout=30s`: answers as soon as the
//! operation is `done` or `failed`, or with its current state when the timeout passes.
//! The request sleeps on the waiters' registry (`crate::background::waiters`), woken by the
//! commit of the write; it reads the store once (twice if it times out).

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::response::IntoResponse;
use opsd_domain::duration::{DEFAULT_WAIT, parse_wait_timeout};
use opsd_domain::{Operation, Role};

use crate::background::waiters::Registration;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ErrorBody, Result};
use crate::http::extract::{QueryParams, RawPath, uuid_param};
use crate::http::nirvana::models::OperationOut;
use crate::http::nirvana::operations::{not_found, with_etag};
use crate::http::refusals::NoSuchOperation;

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
        NoSuchOperation,
    )
)]
pub async fn wait(State(state): State<AppState>, request: Request) -> Result<impl IntoResponse> {
    // The checks run in a future of their own, freed before the sleep: a parked wait
    // keeps only its registration, deadline and shutdown signal, not the request, the
    // caller, the parsed query or the operation (thousands of waits park at once).
    let (me, seen, timeout) = Box::pin(prepare(&state, request)).await?;
    let id = me.id();
    let op = match seen {
        Seen::Finished(op) => *op,
        Seen::Unfinished(version) => me
            .sleep(
                &*state.store,
                version,
                tokio::time::Instant::now() + timeout,
                state.live.shutdown_signal(),
            )
            .await?
            .ok_or_else(|| not_found(id))?,
    };
    Ok(with_etag(op.version, Json(OperationOut::from(op))))
}

/// What the first read found.
enum Seen {
    /// Done or failed: the answer (boxed: the handler's future keeps room for the
    /// largest variant while it sleeps).
    Finished(Box<Operation>),
    /// Not yet finished, at this version.
    Unfinished(u64),
}

/// Checks the caller, the id and the timeout, registers the waiter and reads the
/// operation once. Visibility is checked before waiting: a hidden operation answers 404
/// at once, as a missing one does, so the time to answer reveals nothing either.
async fn prepare(state: &AppState, request: Request) -> Result<(Registration<'_>, Seen, Duration)> {
    let (mut parts, _) = request.into_parts();
    let caller = Caller::from_request_parts(&mut parts, state).await?;
    let path: RawPath = Path::from_request_parts(&mut parts, state).await;
    caller.require(Role::Reader)?;
    let id = uuid_param(path, "operation_id")?;
    // Registered before the read: a write committed in between is read or delivered.
    let me = state.live.waiters.register(id);
    let op = state.store.get(id).await?.ok_or_else(|| not_found(id))?;
    caller.require_operation(Role::Reader, &op)?;
    let q = QueryParams::parse(parts.uri.query(), &["timeout"])?;
    let timeout = q
        .get("timeout")
        .map(|t| parse_wait_timeout("timeout", t))
        .transpose()?
        .unwrap_or(DEFAULT_WAIT);
    let seen = if op.status.is_terminal() {
        Seen::Finished(Box::new(op))
    } else {
        Seen::Unfinished(op.version)
    };
    Ok((me, seen, timeout))
}
