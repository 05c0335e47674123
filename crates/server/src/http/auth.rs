//! Authentication and authorization (SECURITY.md). A middleware turns the request's key
//! (`Authorization: Bearer …`, or `?key=` on the Google paths) into a [`Principal`]
//! stored in the request; handlers take it as [`Caller`] and ask it for what they need:
//! a role, and access to a project. Hidden operations answer 404 (their existence is
//! not revealed); lists and writes into a hidden project answer 403.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Uri, header};
use axum::response::Response;
use opsd_domain::{Denied, Operation, Principal, Role};
use opsd_store::KeyStore;

use super::AppState;
use super::console::session;
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

/// Verifies keys (with a short cache) and meters each key's rate, and each client
/// address's failed attempts.
pub struct Authenticator {
    keys: Arc<dyn KeyStore>,
    /// Keyed by the key's hash: no plaintext key is kept in memory beyond a request.
    cache: Cache,
    /// Console sessions, keyed by the session secret's hash; apart from `cache`, so a
    /// session secret is never accepted as a key.
    sessions: Cache,
    buckets: Mutex<HashMap<uuid::Uuid, Bucket>>,
    rate: Option<RateLimit>,
    /// Failed authentications per client address: a flood of bad keys is answered 429
    /// at once, before any hashing or store lookup, so it cannot crowd out valid keys.
    failures: Mutex<HashMap<IpAddr, Bucket>>,
    failure_rate: Option<RateLimit>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: RateLimit, now: Instant) -> Self {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    /// Adds the tokens earned since the last visit; the seconds until one token is
    /// there, if none is.
    fn refill(&mut self, rate: RateLimit, now: Instant) -> Result<(), u64> {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate.per_second)
            .min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / rate.per_second;
        Err(wait.ceil().max(1.0) as u64)
    }
}

/// How many client addresses' failure buckets are kept before idle ones are dropped.
const MAX_FAILURE_BUCKETS: usize = 10_000;

impl Authenticator {
    /// An authenticator over `keys`; `rate` of `None` disables rate limiting, and
    /// `failure_rate` of `None` the limit on failed attempts per client address.
    pub fn new(
        keys: Arc<dyn KeyStore>,
        rate: Option<RateLimit>,
        failure_rate: Option<RateLimit>,
    ) -> Self {
        Self {
            keys,
            cache: Mutex::default(),
            sessions: Mutex::default(),
            buckets: Mutex::default(),
            rate,
            failures: Mutex::default(),
            failure_rate,
        }
    }

    /// Reserves one of `ip`'s failed attempts before its key is checked (so that
    /// concurrent requests cannot all pass on the same last token), or 429 when none is
    /// left. [`Self::key_was_valid`] gives the reservation back.
    fn check_failures(&self, ip: IpAddr) -> Result<(), ApiError> {
        let (Some(rate), Ok(mut failures)) = (self.failure_rate, self.failures.lock()) else {
            return Ok(());
        };
        let now = Instant::now();
        if failures.len() >= MAX_FAILURE_BUCKETS {
            // A full bucket is the same as no bucket: forget those.
            failures.retain(|_, b| {
                let _ = b.refill(rate, now);
                b.tokens < rate.burst
            });
        }
        let bucket = failures
            .entry(ip)
            .or_insert_with(|| Bucket::full(rate, now));
        bucket
            .refill(rate, now)
            .map_err(|retry_after_s| ApiError::TooManyFailures { retry_after_s })?;
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// Gives back the attempt [`Self::check_failures`] reserved: the key was valid.
    fn key_was_valid(&self, ip: IpAddr) {
        let (Some(rate), Ok(mut failures)) = (self.failure_rate, self.failures.lock()) else {
            return;
        };
        if let Some(b) = failures.get_mut(&ip) {
            b.tokens = (b.tokens + 1.0).min(rate.burst);
        }
    }

    /// The principal of a key verified within the cache's TTL, if any.
    fn cached_key(&self, secret: &str) -> Option<Arc<Principal>> {
        cached(&self.cache, &opsd_store::api_keys::hash(secret))
    }

    /// The principal of a live session (unexpired, its key not revoked), or 401.
    async fn verify_session(&self, secret: &str) -> Result<Arc<Principal>, ApiError> {
        let hash = opsd_store::sessions::hash(secret);
        if let Some(p) = cached(&self.sessions, &hash) {
            return Ok(p);
        }
        let found = self.keys.session_key(secret, opsd_domain::now()).await?;
        let principal = Arc::new(Principal::from(
            found
                .ok_or(ApiError::Unauthenticated(
                    "the console session expired or was ended: sign in again",
                ))?
                .0,
        ));
        remember(&self.sessions, hash, &principal);
        Ok(principal)
    }

    /// Forgets one cached session (after its sign-out).
    pub fn forget_session(&self, secret: &str) {
        if let Ok(mut c) = self.sessions.lock() {
            c.remove(&opsd_store::sessions::hash(secret));
        }
    }

    /// The principal of a live key, or 401.
    pub async fn verify(&self, secret: &str) -> Result<Arc<Principal>, ApiError> {
        let hash = opsd_store::api_keys::hash(secret);
        if let Some(p) = cached(&self.cache, &hash) {
            return Ok(p);
        }
        let key = self.keys.authenticate(secret).await?;
        let principal = Arc::new(Principal::from(key.ok_or(ApiError::Unauthenticated(
            "the API key is not valid or was revoked",
        ))?));
        remember(&self.cache, hash, &principal);
        Ok(principal)
    }

    /// Forgets every cached key and session (after a revocation: the key's sessions end
    /// with it).
    pub fn forget_cached_keys(&self) {
        for cache in [&self.cache, &self.sessions] {
            if let Ok(mut c) = cache.lock() {
                c.clear();
            }
        }
    }

    /// Takes one token from the key's bucket, or says how long until one is there.
    fn admit(&self, key: uuid::Uuid) -> Result<(), ApiError> {
        let Some(rate) = self.rate else { return Ok(()) };
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let b = buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(rate, now));
        b.refill(rate, now)
            .map_err(|retry_after_s| ApiError::RateLimited { retry_after_s })?;
        b.tokens -= 1.0;
        Ok(())
    }
}

/// Verified principals by hash, shared behind an `Arc`: a request takes a reference, not
/// a copy of the key's name and project set (a clone per request showed up in perf).
type Cache = Mutex<HashMap<[u8; 32], (Arc<Principal>, Instant)>>;

fn cached(cache: &Cache, hash: &[u8; 32]) -> Option<Arc<Principal>> {
    cache.lock().ok().and_then(|c| {
        c.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(p, _)| p.clone())
    })
}

fn remember(cache: &Cache, hash: [u8; 32], principal: &Arc<Principal>) {
    if let Ok(mut c) = cache.lock() {
        // Entries are tiny; drop expired ones when the cache grows, so it stays bounded
        // by the number of keys (or sessions) in use within one TTL.
        if c.len() > 10_000 {
            c.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        c.insert(hash, (principal.clone(), Instant::now()));
    }
}

/// Paths anyone may call: liveness and readiness probes.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

fn is_google(path: &str) -> bool {
    path.starts_with(google::PREFIX)
}

/// gRPC services anyone may call without a key: health (for probes) and reflection (the
/// schema, which is public in the repository anyway). Neither reads operations.
fn is_keyless_grpc(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// Static files of the console and the docs viewer: served to anyone (the sign-in page
/// needs them), they hold no data.
fn is_static_asset(path: &str) -> bool {
    path.starts_with("/console/assets/") || path.starts_with("/docs/assets/")
}

/// Pages that work signed in or not (they show the sign-in form, or redirect to it).
pub(crate) fn is_optional_auth(path: &str) -> bool {
    matches!(path, "/console" | "/console/sign-in" | "/docs")
}

/// How a request proved who it is.
enum Credential {
    /// An API key (bearer, or Google's `key=`).
    Key(String),
    /// A console session cookie.
    Session(String),
}

/// The key or session a request presents; a malformed presentation (two
/// `Authorization` headers) is refused.
fn credential(headers: &axum::http::HeaderMap, uri: &Uri) -> Result<Option<Credential>, ApiError> {
    Ok(presented_key(headers, uri)?
        .map(Credential::Key)
        .or_else(|| session::cookie(headers).map(Credential::Session)))
}

/// The key of a request: the bearer token, or Google's `key=` parameter on Google paths.
/// More than one `Authorization` header is refused: which one a proxy or a client meant
/// is ambiguous, and "first wins" lets a second header pass unnoticed.
fn presented_key(parts: &axum::http::HeaderMap, uri: &Uri) -> Result<Option<String>, ApiError> {
    if parts.get_all(header::AUTHORIZATION).iter().nth(1).is_some() {
        return Err(ApiError::Unauthenticated(
            "send exactly one Authorization header",
        ));
    }
    let bearer = parts
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|k| k.trim().to_owned());
    Ok(bearer.or_else(|| {
        is_google(uri.path())
            .then(|| uri.query())
            .flatten()
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "key")
                    .map(|(_, v)| v.into_owned())
            })
    }))
}

/// Middleware step (see `crate::app`): authenticates every non-public request and
/// applies the key's rate limit, then runs `next`. A console session stands for its key,
/// but a state-changing request made with one must also pass the CSRF checks
/// (`session::check_csrf`). A refusal is returned, for the guard to render in the shape
/// of the request's API.
pub async fn authenticate<F, Fut>(
    state: &AppState,
    mut request: Request,
    next: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let path = request.uri().path();
    if is_public(path) || is_static_asset(path) || is_keyless_grpc(path) {
        return next(request).await;
    }
    let optional = is_optional_auth(path);
    // Extracted before any await: the request body is not Sync, so no borrow of the
    // request may live across one.
    let (credential, bad_credential) = match credential(request.headers(), request.uri()) {
        Ok(c) => (c, None),
        Err(e) => (None, Some(e)),
    };
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let csrf = match &credential {
        Some(Credential::Session(secret)) if !optional => {
            session::check_csrf(request.method(), request.headers(), secret, state.scheme)
        }
        _ => Ok(()),
    };
    let result = async {
        if let Some(e) = bad_credential {
            return Err(e);
        }
        csrf?;
        let limited = client.map_or(Ok(()), |ip| state.auth.check_failures(ip));
        let reserved = limited.is_ok();
        let verified = match (limited, &credential) {
            (Ok(()), None) => Err(ApiError::Unauthenticated(
                "an API key is required: send Authorization: Bearer <key>",
            )),
            (Ok(()), Some(Credential::Key(secret))) => state.auth.verify(secret).await,
            (Ok(()), Some(Credential::Session(secret))) => state.auth.verify_session(secret).await,
            // This address is flooding with bad keys: only a key verified within the
            // cache's TTL still passes (a valid client behind the same address keeps
            // working); nothing else is hashed against the store.
            (Err(too_many), Some(Credential::Key(secret))) => {
                state.auth.cached_key(secret).ok_or(too_many)
            }
            (Err(too_many), _) => Err(too_many),
        };
        if let (Ok(_), Some(ip), true) = (&verified, client, reserved) {
            state.auth.key_was_valid(ip);
        }
        let principal = verified?;
        state.auth.admit(principal.key_id)?;
        Ok::<_, ApiError>(principal)
    }
    .await;
    match result {
        Ok(principal) => {
            if let Some(Credential::Session(secret)) = credential {
                request.extensions_mut().insert(session::Current(secret));
            }
            crate::http::trace::record_key(principal.key_id);
            request.extensions_mut().insert(principal);
            next(request).await
        }
        // A page that works signed out: it decides what to show.
        Err(_) if optional => next(request).await,
        Err(e) => Err(e),
    }
}

/// The authenticated caller, as a handler argument.
pub struct Caller(pub Arc<Principal>);

impl Caller {
    /// The caller that [`authenticate`] attached to a request, given what the request's
    /// extensions hold (REST and gRPC requests keep them in different types).
    pub fn attached(principal: Option<&Arc<Principal>>) -> Result<Self, ApiError> {
        principal
            .cloned()
            .map(Caller)
            // Only reachable if a route bypassed the middleware: refuse rather than guess.
            .ok_or(ApiError::Unauthenticated("an API key is required"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Caller::attached(parts.extensions.get())
    }
}

/// A caller with at least the producer role. Checked when the handler's arguments are
/// extracted, before the body is read: a reader's write is a 403 whatever its body.
pub struct Producer(pub Caller);

/// A caller with the admin role, checked before the body is read (see [`Producer`]).
pub struct Admin(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Producer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(Role::Producer)?;
        Ok(Producer(caller))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(Role::Admin)?;
        Ok(Admin(caller))
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
        self.require_operation_in(role, op.id, &op.project_id)
    }

    /// [`Self::require_operation`] for operation `id` of `project` (a cached rendering).
    pub fn require_operation_in(
        &self,
        role: Role,
        id: uuid::Uuid,
        project: &str,
    ) -> Result<(), ApiError> {
        match self.0.require_in(role, project) {
            Ok(()) => Ok(()),
            Err(Denied::Project) => Err(ApiError::NotFound(format!("operation {id} not found"))),
            Err(d) => Err(self.denied(d, project)),
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
