//! The HTTP layer. Read in this order: `error` (how failures become responses),
//! `extract` (strict JSON and query parsing), `nirvana` (the `/v1/operations` dialect and
//! producer API), `google` (the Deployment Manager dialect), `system` (health, OpenAPI, docs), `request_id` (ids and access logs).

pub mod error;
pub mod extract;
pub mod google;
pub mod nirvana;
pub mod request_id;
pub mod system;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use opsd_store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The operations store.
    pub store: Arc<dyn Store>,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(nirvana::router())
        .merge(google::router())
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/openapi.json", get(system::openapi))
        .route("/docs", get(system::docs))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}
