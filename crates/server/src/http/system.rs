//! Operating endpoints: liveness, readiness and the OpenAPI document (which `/docs`
//! renders with the vendored Swagger UI, see `console`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use super::AppState;
use super::error::ApiError;

/// The OpenAPI description, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "opsd",
        description = "Operations service for cloud control planes."
    ),
    paths(
        super::nirvana::operations::get,
        super::nirvana::operations::list,
        super::nirvana::producer::create,
        super::nirvana::producer::update,
        super::nirvana::producer::events,
        super::nirvana::producer::cancel,
        super::google::operations::get,
        super::google::operations::list,
        super::google::operations::wait,
        super::keys::create,
        super::keys::list,
        super::keys::revoke,
        super::live::wait::wait,
        super::live::watch::watch,
        super::live::leases::claim,
        super::live::leases::heartbeat,
        super::insight::stats,
        super::insight::projects,
        healthz,
        readyz,
        super::metrics::export,
    ),
    components(schemas(super::console::session::Whoami))
)]
pub struct ApiDoc;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "system", responses((status = 200), (status = 503)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// Fallback for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// Fallback for known paths with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
