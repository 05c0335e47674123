//! Live operations over HTTP (docs/live-operations.md): `wait` (return when an operation finishes),
//! `watch` (a project's changes as Server-Sent Events), `leases` (claim and heartbeat
//! for workers). The machinery behind them is in `crate::background`.

pub mod leases;
pub mod wait;
pub mod watch;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;

/// Routes of live operations. The static segments (`watch`, `claim`) take precedence
/// over `/v1/operations/{operation_id}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/operations/watch", get(watch::watch))
        .route("/v1/operations/claim", post(leases::claim))
        .route("/v1/operations/{operation_id}/wait", get(wait::wait))
        .route(
            "/v1/operations/{operation_id}/heartbeat",
            post(leases::heartbeat),
        )
}
