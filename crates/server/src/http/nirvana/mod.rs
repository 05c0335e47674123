//! `/v1/operations…`: the Nirvana-compatible read API (`operations`) and opsd's producer
//! API (`producer`), which share the wire types in `models`.

pub mod models;
pub mod operations;
pub mod producer;

use axum::Router;
use axum::routing::get;

use super::AppState;

/// Routes under `/v1/operations`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/operations",
            get(operations::list).post(producer::create),
        )
        .route(
            "/v1/operations/{operation_id}",
            get(operations::get).patch(producer::update),
        )
        .route(
            "/v1/operations/{operation_id}/events",
            get(producer::events),
        )
        .route(
            "/v1/operations/{operation_id}/cancel",
            axum::routing::post(producer::cancel),
        )
}
