//! The HTTP layer. Read in this order: `error` (how failures become responses),
//! `extract` (strict JSON and query parsing), `auth` (keys, roles, project scopes),
//! `nirvana` (the `/v1/operations` dialect and producer API), `google` (the Deployment
//! Manager dialect), `live` (wait, watch, claim and heartbeat), `keys` (key management),
//! `openapi` (the published contract), `system` (health, OpenAPI, docs), `limits` (overload protection), `request_id` (ids
//! and access logs), `metrics` (`/metrics` and request metrics).

pub mod auth;
pub mod error;
pub mod extract;
pub mod google;
pub mod keys;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod nirvana;
pub mod openapi;
pub mod request_id;
pub mod system;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opsd_store::{KeyStore, Store};

pub use auth::RateLimit;

/// Tunables of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest an ordinary request may take (wait and watch excepted).
    pub request_timeout: Duration,
    /// Ordinary requests served at once; more are shed with 503.
    pub max_concurrent_requests: usize,
    /// Waits and watch streams open at once; more are shed with 503.
    pub max_long_lived_requests: usize,
    /// Per-key request rate; `None` disables it.
    pub rate_limit: Option<RateLimit>,
    /// Failed authentications per client address; `None` disables the limit.
    pub auth_failure_limit: Option<RateLimit>,
    /// Longest a client may take to send a request's head, and longest a keep-alive
    /// connection may stay idle between requests.
    pub header_read_timeout: Duration,
    /// Whether the listener speaks TLS (links the server writes then start `https://`).
    pub tls: bool,
}

impl Default for Config {
    /// Generous enough that normal use and the benchmarks never meet them.
    fn default() -> Self {
        Config {
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 1024,
            max_long_lived_requests: 20_000,
            rate_limit: Some(RateLimit {
                per_second: 50_000.0,
                burst: 50_000.0,
            }),
            auth_failure_limit: Some(RateLimit {
                per_second: 100.0,
                burst: 1_000.0,
            }),
            header_read_timeout: Duration::from_secs(10),
            tls: false,
        }
    }
}

use crate::live::Live;
use crate::metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The operations store.
    pub store: Arc<dyn Store>,
    /// The API keys.
    pub keys: Arc<dyn KeyStore>,
    /// Key verification and rate limits.
    pub auth: Arc<auth::Authenticator>,
    /// Concurrency caps and timeouts.
    pub limits: Arc<limits::Limits>,
    /// `http` or `https`, for links the server writes (Google's `selfLink`).
    pub scheme: &'static str,
    /// Waiters, the wait dispatcher and the shutdown signal of live requests.
    pub live: Arc<Live>,
    /// The exported metrics.
    pub metrics: Arc<Metrics>,
    /// See [`Config::header_read_timeout`].
    pub header_read_timeout: Duration,
}

impl AppState {
    /// State over one backend that stores both operations and keys. Starts the wait
    /// dispatcher, so it must be called inside a Tokio runtime.
    pub fn new<S: Store + KeyStore>(store: Arc<S>, config: &Config) -> Self {
        Self::from_parts(store.clone(), store, config)
    }

    /// State over separate operation and key stores (tests wrap one and not the other).
    pub fn from_parts(store: Arc<dyn Store>, keys: Arc<dyn KeyStore>, config: &Config) -> Self {
        let metrics = Arc::new(Metrics::new());
        let live = Arc::new(Live::start(&*store, metrics.clone()));
        AppState {
            store,
            auth: Arc::new(auth::Authenticator::new(
                keys.clone(),
                config.rate_limit,
                config.auth_failure_limit,
            )),
            keys,
            limits: Arc::new(limits::Limits::new(
                config.request_timeout,
                config.max_concurrent_requests,
                config.max_long_lived_requests,
            )),
            scheme: if config.tls { "https" } else { "http" },
            live,
            metrics,
            header_read_timeout: config.header_read_timeout,
        }
    }
}

/// Renders `e` in the error shape of the dialect that owns `path`.
pub fn error_response(path: &str, e: error::ApiError) -> Response {
    if path.starts_with(google::PREFIX) {
        google::error::GoogleError(e).into_response()
    } else {
        e.into_response()
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(nirvana::router())
        .merge(google::router())
        .merge(keys::router())
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
            state.clone(),
            auth::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::layer,
        ))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}
