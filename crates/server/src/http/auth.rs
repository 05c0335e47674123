//! Authentication and authorization (SECURITY.md). A middleware turns the request's key
//! (`Authorization: Bearer …`, or `?key=` on the Google paths) into a [`Principal`]
//! stored in the request; handlers take it as [`Caller`] and ask it for what they need:
//! a role, and access to a project. Hidden operations answer 404 (their existence is
//! not revealed); lists and writes into a hidden project answer 403.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opsd_domain::{Denied, Operation, Principal, Role};
use opsd_store::KeyStore;

use super::AppState;
use super::error::ApiError;
use super::google;

/// How long a verified key is trusted without asking the store again. Revocations made
/// through this server clear the cache at once; the TTL bounds how long a revocation made
/// elsewhere (another replica, the CLI) takes to bite.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// Per-key request rate limit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may arrive at once.
    pub burst: f64,
}

/// Verifies keys (with a short cache) and meters each key's rate.
pub struct Authenticator {
    keys: Arc<dyn KeyStore>,
    /// Keyed by the key's hash: no plaintext key is kept in memory beyond a request.
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
    buckets: Mutex<HashMap<uuid::Uuid, Bucket>>,
    rate: Option<RateLimit>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Authenticator {
    /// An authenticator over `keys`; `rate` of `None` disables rate limiting.
    pub fn new(keys: Arc<dyn KeyStore>, rate: Option<RateLimit>) -> Self {
        Self {
            keys,
            cache: Mutex::default(),
            buckets: Mutex::default(),
            rate,
        }
    }

    /// The principal of a live key, or 401.
    async fn verify(&self, secret: &str) -> Result<Principal, ApiError> {
        let hash = opsd_store::api_keys::hash(secret);
        let cached = self.cache.lock().ok().and_then(|c| {
            c.get(&hash)
                .filter(|(_, at)| at.elapsed() < CACHE_TTL)
                .map(|(p, _)| p.clone())
        });
        if let Some(p) = cached {
            return Ok(p);
        }
        let key = self.keys.authenticate(secret).await?;
        let principal = Principal::from(key.ok_or(ApiError::Unauthenticated(
            "the API key is not valid or was revoked",
        ))?);
        if let Ok(mut c) = self.cache.lock() {
            // Entries are tiny; drop expired ones when the cache grows, so it stays bounded
            // by the number of keys in use within one TTL.
            if c.len() > 10_000 {
                c.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            }
            c.insert(hash, (principal.clone(), Instant::now()));
        }
        Ok(principal)
    }

    /// Forgets every cached key (after a revocation).
    pub fn forget_cached_keys(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    /// Takes one token from the key's bucket, or says how long until one is there.
    fn admit(&self, key: uuid::Uuid) -> Result<(), ApiError> {
        let Some(rate) = self.rate else { return Ok(()) };
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_second).min(rate.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - b.tokens) / rate.per_second;
        Err(ApiError::RateLimited {
            retry_after_s: wait.ceil().max(1.0) as u64,
        })
    }
}

/// Paths anyone may call: liveness and readiness probes.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

fn is_google(path: &str) -> bool {
    path.starts_with(google::PREFIX)
}

/// The key of a request: the bearer token, or Google's `key=` parameter on Google paths.
fn presented_key<'a>(parts: &'a axum::http::HeaderMap, uri: &'a Uri) -> Option<String> {
    let bearer = parts
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|k| k.trim().to_owned());
    bearer.or_else(|| {
        is_google(uri.path())
            .then(|| uri.query())
            .flatten()
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "key")
                    .map(|(_, v)| v.into_owned())
            })
    })
}

/// Middleware: authenticates every non-public request and applies the key's rate limit.
pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if is_public(&path) {
        return next.run(request).await;
    }
    // Extracted before any await: the request body is not Sync, so no borrow of the
    // request may live across one.
    let secret = presented_key(request.headers(), request.uri());
    let result = async {
        let secret = secret.ok_or(ApiError::Unauthenticated(
            "an API key is required: send Authorization: Bearer <key>",
        ))?;
        let principal = state.auth.verify(&secret).await?;
        state.auth.admit(principal.key_id)?;
        Ok::<_, ApiError>(principal)
    }
    .await;
    match result {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) if is_google(&path) => google::error::GoogleError(e).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The authenticated caller, as a handler argument.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            // Only reachable if a route bypassed the middleware: refuse rather than guess.
            .ok_or(ApiError::Unauthenticated("an API key is required"))
    }
}

impl Caller {
    /// Requires at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        self.0.require(role).map_err(|d| self.denied(d, ""))
    }

    /// Requires `role` in `project`, for lists and writes into a project: 403 otherwise.
    pub fn require_project(&self, role: Role, project: &str) -> Result<(), ApiError> {
        self.0
            .require_in(role, project)
            .map_err(|d| self.denied(d, project))
    }

    /// Requires `role` on an existing operation: a hidden operation is a 404, exactly as
    /// if it did not exist.
    pub fn require_operation(&self, role: Role, op: &Operation) -> Result<(), ApiError> {
        match self.0.require_in(role, &op.project_id) {
            Ok(()) => Ok(()),
            Err(Denied::Project) => {
                Err(ApiError::NotFound(format!("operation {} not found", op.id)))
            }
            Err(d) => Err(self.denied(d, &op.project_id)),
        }
    }

    fn denied(&self, d: Denied, project: &str) -> ApiError {
        match d {
            Denied::Role { needed } => ApiError::Forbidden(format!(
                "this needs the {} role; key '{}' is a {}",
                needed.as_str(),
                self.0.name,
                self.0.role.as_str()
            )),
            Denied::Project => ApiError::Forbidden(format!(
                "key '{}' may not access project '{project}'",
                self.0.name
            )),
        }
    }
}
