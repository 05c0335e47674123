//! The HTTP layer: the REST API's state, handlers and middleware steps (the application
//! that routes to them, with gRPC beside, is `crate::app`). Read in this order: `error`
//! (how failures become responses), `extract` (strict JSON and query parsing), `auth`
//! (keys, roles, project scopes), `nirvana` (the `/v1/operations` dialect and producer
//! API), `google` (the Deployment Manager dialect), `live` (wait, watch, claim and
//! heartbeat), `keys` (key management), `admin` (backups, the read-only switch),
//! `openapi` (the published contract), `system` (health, OpenAPI), `projects` (projects
//! and the stats of a project), `console` (the operator console, its sessions, and the
//! `/docs` viewer), `limits` (overload protection), `request_id` (ids and access logs),
//! `trace` (request spans), `request_metrics` (`/metrics` and request metrics).

pub mod admin;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod google;
pub mod keys;
pub mod limits;
pub mod live;
pub mod nirvana;
pub mod openapi;
pub mod projects;
pub mod refusals;
pub mod request_id;
pub mod request_metrics;
pub mod system;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use opsd_store::{KeyStore, Store};
use tower_http::cors::{AllowOrigin, CorsLayer};

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
    /// Origins whose pages may call the API from a browser (CORS), such as
    /// `https://app.example.com`; empty: none. Checked by [`parse_origin`].
    pub cors_allowed_origins: Vec<String>,
    /// Bytes of rendered GET and list responses kept in memory (0: no read cache).
    pub read_cache_bytes: usize,
    /// Start refusing writes (503 `read_only`) until an admin switches it off.
    pub read_only: bool,
}

impl Default for Config {
    /// Generous enough that normal use never meets them (the benchmark raises the
    /// per-key rate: it sends everything with one key).
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
            cors_allowed_origins: Vec::new(),
            read_cache_bytes: read_cache::DEFAULT_BUDGET_BYTES,
            read_only: false,
        }
    }
}

use crate::background::{self, Live};
use crate::metrics::Metrics;
use crate::read_cache::{self, ReadCache};

/// What every handler can reach: one `Arc`, because axum clones the state for every
/// middleware and handler of every request (cloning a dozen `Arc`s each time was ~10% of
/// a cached GET, measured with perf).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct Shared {
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
    /// Rendered operations and list pages, kept current by the change feed.
    pub reads: Arc<ReadCache>,
    /// Origins allowed by CORS.
    pub cors_allowed_origins: Vec<HeaderValue>,
    /// See [`Config::header_read_timeout`].
    pub header_read_timeout: Duration,
    /// Whether writes are refused now ([`Config::read_only`], `/v1/admin/read_only`).
    /// Shared with the background tasks: retention deletes nothing while it is on.
    pub read_only: Arc<std::sync::atomic::AtomicBool>,
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
        // Subscribed before anything can be written through this state.
        let deletions = store.clone();
        let reads = Arc::new(ReadCache::new(
            store.subscribe(),
            config.read_cache_bytes,
            Box::new(move || deletions.deletions()),
        ));
        let live = Arc::new(Live::start(store.clone(), metrics.clone()));
        AppState(Arc::new(Shared {
            reads,
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
            cors_allowed_origins: config
                .cors_allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
            header_read_timeout: config.header_read_timeout,
            read_only: Arc::new(std::sync::atomic::AtomicBool::new(config.read_only)),
        }))
    }

    /// What the background tasks need of this state ([`background::Background::start`]).
    pub fn background_handles(&self) -> background::Handles {
        background::Handles {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            reads: self.reads.clone(),
            read_only: self.read_only.clone(),
        }
    }
}

/// Whether a request is a gRPC call (`content-type: application/grpc…`): gRPC is served
/// on the HTTP API's address, and told apart by this alone.
pub fn is_grpc(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Renders `e` in the error shape of the dialect that owns `path`.
pub fn error_response(path: &str, e: error::ApiError) -> Response {
    if path.starts_with(google::PREFIX) {
        google::error::GoogleError(e).into_response()
    } else {
        e.into_response()
    }
}

/// Checks one `--cors-allowed-origins` entry: `http(s)://host[:port]`, nothing more (an
/// origin has no path, and `*` is refused: name the applications you trust).
pub fn parse_origin(s: &str) -> Result<String, String> {
    let rule = "an origin is http:// or https:// followed by a host and an optional port, \
                with no path (e.g. https://app.example.com)";
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("'{s}': {rule}"))?;
    let ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!("'{s}': {rule}"))
    }
}

/// CORS for the configured origins. Browser applications there call the API with their
/// own key in `Authorization`; cookies are never accepted cross-origin (no credentials),
/// so a console session cannot be used from another origin. Preflights are answered here,
/// before authentication, because browsers send them without the key.
pub(crate) fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-should-retry"),
        ])
        .max_age(Duration::from_secs(600))
}
