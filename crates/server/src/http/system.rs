//! Operating endpoints: liveness, readiness and the OpenAPI document (which `/docs`
//! renders with the vendored Swagger UI, see `console`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opsd_store::supervise;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::error::ApiError;
use super::openapi::document;

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "system", operation_id = "healthz",
    responses((status = 200, description = "The process answers", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// How far the change feed may trail the database before the process is not ready.
pub const MAX_FEED_LAG_MS: u64 = 5_000;
/// Longest the store's checks may take before they count as failed.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// What `/readyz` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// True when every check passes: send this process traffic.
    pub ready: bool,
    /// Each check's outcome.
    pub checks: ReadinessChecks,
}

/// The checks of `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// `ok`, or `unavailable` when the store does not answer a read.
    pub store: String,
    /// The writer: `ok`, `restarting` (it panicked and is being restarted) or `failed`
    /// (it panicked 5 times within 60 s; the process is exiting).
    pub writer: String,
    /// How far the change feed trails the database's head, in milliseconds; ready
    /// needs at most 5,000. Null when the backend cannot tell.
    pub feed_lag_ms: Option<u64>,
    /// Whether the disk accepts writes: `ok`, `full` or `error`; null when the
    /// database is on another machine (PostgreSQL).
    pub disk: Option<String>,
    /// `ok`, or the name of a worker that panicked 5 times within 60 s.
    pub workers: String,
}

/// Readiness: whether this process can do its job now — the store answers, the writer
/// is alive, the change feed is within 5 s of the database and the disk accepts
/// writes. A load balancer sends traffic only to a ready process; liveness is
/// `/healthz`.
#[utoipa::path(
    get, path = "/readyz", tag = "system", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready for traffic", body = Readiness),
        (status = 503, description = "Not ready: the failing checks say why", body = Readiness,
         headers(("Retry-After" = u32, description = "Seconds before asking again"))),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (ping, store) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, state.store.readiness()),
    );
    let store_ok = match ping {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: the store does not answer");
            false
        }
        Err(_) => {
            tracing::warn!("readiness check: the store did not answer in time");
            false
        }
    };
    let store = store.unwrap_or(opsd_store::Readiness {
        disk: Some("error"),
        feed_lag_ms: None,
    });
    let writer = supervise::state_of("writer");
    let gave_up = supervise::given_up();
    let ready = store_ok
        && writer == supervise::WorkerState::Running
        && store.feed_lag_ms.is_none_or(|lag| lag <= MAX_FEED_LAG_MS)
        && store.disk.is_none_or(|d| d == "ok")
        && gave_up.is_none();
    let body = Readiness {
        ready,
        checks: ReadinessChecks {
            store: if store_ok { "ok" } else { "unavailable" }.to_owned(),
            writer: writer.as_str().to_owned(),
            feed_lag_ms: store.feed_lag_ms,
            disk: store.disk.map(str::to_owned),
            workers: gave_up.unwrap_or("ok").to_owned(),
        },
    };
    if ready {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(body),
        )
            .into_response()
    }
}

/// Test-only fault hook (routed only when `OPSD_FAULT_HOOKS=1`): `panic` makes the
/// worker named in the path panic once, so that tests can watch it being restarted; any
/// other fault arms that fault point of the worker once (for example
/// `postgres-writer/lose-commit`). Admin only.
pub async fn inject_fault(
    _: Admin,
    Path((worker, fault)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let armed = if fault == "panic" {
        supervise::arm_panic(&worker)
    } else {
        supervise::arm_fault(&format!("{worker}/{fault}"))
    };
    if armed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no worker {worker} with a fault point {fault}"
        )))
    }
}

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get, path = "/openapi.json", tag = "system", operation_id = "getOpenApi",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub async fn openapi() -> impl IntoResponse {
    Json(document())
}

/// Fallback for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// Fallback for known paths with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
