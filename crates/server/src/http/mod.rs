//! The HTTP layer. Read in this order: `error` (how failures become responses),
//! `extract` (strict JSON and query parsing), `auth` (keys, roles, project scopes),
//! `nirvana` (the `/v1/operations` dialect and producer API), `google` (the Deployment
//! Manager dialect), `live` (wait, watch, claim and heartbeat), `keys` (key management),
//! `openapi` (the published contract), `system` (health, OpenAPI), `insight` (projects
//! and the stats of a project), `console` (the operator console, its sessions, and the
//! `/docs` viewer), `limits` (overload protection), `request_id` (ids and access logs),
//! `metrics` (`/metrics` and request metrics).

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
pub mod read_cache;
pub mod request_id;
pub mod request_metrics;
pub mod system;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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

use crate::background::Live;
use crate::metrics::Metrics;

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
    pub reads: Arc<read_cache::ReadCache>,
    /// Origins allowed by CORS.
    pub cors_allowed_origins: Vec<HeaderValue>,
    /// See [`Config::header_read_timeout`].
    pub header_read_timeout: Duration,
    /// Whether writes are refused now ([`Config::read_only`], `/v1/admin/read_only`).
    pub read_only: std::sync::atomic::AtomicBool,
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
        let reads = Arc::new(read_cache::ReadCache::new(
            store.subscribe(),
            config.read_cache_bytes,
            (!store.sole_writer()).then_some(read_cache::MAX_AGE),
        ));
        let live = Arc::new(Live::start(&*store, metrics.clone()));
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
            read_only: std::sync::atomic::AtomicBool::new(config.read_only),
        }))
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
fn cors(origins: &[HeaderValue]) -> CorsLayer {
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

/// Metrics, then limits, then authentication, around every request: one middleware whose
/// steps call each other directly. As three `from_fn` layers, each boxed its future and
/// cloned the state and the inner service per request (measured with perf on a cached
/// GET, where they were most of the server's own work).
async fn guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let guarded = |r| {
        limits::admit(&state, r, |r| {
            auth::authenticate(&state, r, |r| async {
                let read_only = state.read_only.load(std::sync::atomic::Ordering::SeqCst);
                if read_only {
                    let refused = error::ApiError::ReadOnly { retry_after_s: 5 };
                    let path = r.uri().path();
                    // Every gRPC call is a POST: its method says whether it writes.
                    if crate::grpc::is_grpc(r.headers()) {
                        if crate::grpc::writes(path) {
                            return crate::grpc::status::response(&refused);
                        }
                    } else if admin::writes(r.method(), path) {
                        return error_response(path, refused);
                    }
                }
                next.run(r).await
            })
        })
    };
    // gRPC calls have their own metrics: their HTTP status is always 200.
    if crate::grpc::is_grpc(request.headers()) {
        crate::grpc::observe::observe(&state.metrics, request, guarded).await
    } else {
        request_metrics::observe(&state.metrics, request, guarded).await
    }
}

/// Unknown paths: 404, or UNIMPLEMENTED for a gRPC call.
async fn fallback(headers: axum::http::HeaderMap) -> Response {
    if crate::grpc::is_grpc(&headers) {
        crate::grpc::unimplemented()
    } else {
        system::not_found().await.into_response()
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let cors_origins = state.cors_allowed_origins.clone();
    let app = Router::new()
        .merge(nirvana::router())
        .merge(google::router())
        .merge(keys::router())
        .merge(admin::router())
        .merge(live::router())
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/openapi.json", get(system::openapi))
        .route("/metrics", get(request_metrics::export))
        .route("/v1/projects", get(projects::projects))
        .route("/v1/operations/stats", get(projects::stats))
        .merge(console::router())
        .merge(crate::grpc::router(state.clone()));
    // Test-only: the fault hooks exist only in a process started with them on.
    let app = if opsd_store::supervise::faults_enabled() {
        app.route(
            "/debug/faults/{worker}/{fault}",
            axum::routing::post(system::inject_fault),
        )
    } else {
        app
    };
    let app = app
        .fallback(fallback)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    // CORS inside the request id (preflights get one too), outside everything else.
    let app = if cors_origins.is_empty() {
        app
    } else {
        app.layer(cors(&cors_origins))
    };
    app.layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}
