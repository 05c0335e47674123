//! The HTTP layer. Read in this order: `error` (how failures become responses),
//! `extract` (strict JSON and query parsing), `nirvana` (the `/v1/operations` dialect and
//! producer API), `live` (wait, watch, claim and heartbeat), `system` (health, OpenAPI,
//! docs), `request_id` (ids and access logs), `metrics` (`/metrics` and request metrics).

pub mod error;
pub mod extract;
pub mod live;
pub mod metrics;
pub mod nirvana;
pub mod request_id;
pub mod system;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use opsd_store::Store;

use crate::live::Live;
use crate::metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The operations store.
    pub store: Arc<dyn Store>,
    /// Waiters, the wait dispatcher and the shutdown signal of live requests.
    pub live: Arc<Live>,
    /// The exported metrics.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// The state of a server over `store`. Starts the wait dispatcher, so it must be
    /// called inside a Tokio runtime.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let metrics = Arc::new(Metrics::new());
        let live = Arc::new(Live::start(&*store, metrics.clone()));
        Self {
            store,
            live,
            metrics,
        }
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(nirvana::router())
        .merge(live::router())
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/openapi.json", get(system::openapi))
        .route("/docs", get(system::docs))
        .route("/metrics", get(metrics::export))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::layer,
        ))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}
