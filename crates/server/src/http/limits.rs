//! Overload protection: a cap on concurrent ordinary requests that sheds load with 503 +
//! `Retry-After` instead of queueing without bound, and a per-request timeout. Long-lived
//! requests (wait, watch) have their own, much larger cap and no timeout: thousands of
//! parked waiters are normal and cost almost nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use tokio::sync::Semaphore;

use super::AppState;
use super::error::ApiError;
use crate::guarded_body::Guarded;

/// The limits, built once from the configuration.
pub struct Limits {
    request_timeout: Duration,
    ordinary: Arc<Semaphore>,
    long_lived: Arc<Semaphore>,
}

impl Limits {
    /// `max_ordinary` concurrent ordinary requests, each at most `request_timeout`;
    /// `max_long_lived` concurrent waits and watch streams.
    pub fn new(request_timeout: Duration, max_ordinary: usize, max_long_lived: usize) -> Self {
        Self {
            request_timeout,
            ordinary: Arc::new(Semaphore::new(max_ordinary)),
            long_lived: Arc::new(Semaphore::new(max_long_lived)),
        }
    }
}

/// The gRPC wait, the long-lived method of `google.longrunning.Operations`.
const GRPC_WAIT_PATH: &str = "/google.longrunning.Operations/WaitOperation";

/// Waits (REST and gRPC) and watch streams: held open by design; and backups, whose length grows with
/// the store.
fn is_long_lived(path: &str) -> bool {
    path.ends_with("/wait")
        || path == "/v1/operations/watch"
        || path == "/v1/admin/backup"
        || path == GRPC_WAIT_PATH
}

/// Middleware step (see `crate::app`): admit or shed, then bound the time of ordinary
/// requests run by `next`. A refusal is returned, for the guard to render in the shape
/// of the request's API.
pub async fn admit<F, Fut>(
    state: &AppState,
    request: Request,
    next: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let path = request.uri().path();
    // Probes must answer under load, or an orchestrator would restart a busy server.
    if super::auth::is_public(path) {
        return next(request).await;
    }
    let long = is_long_lived(path);
    let refuse = |message| {
        Err(ApiError::Overloaded {
            message,
            retry_after_s: 1,
        })
    };
    let limits = &state.limits;
    let semaphore = if long {
        &limits.long_lived
    } else {
        &limits.ordinary
    };
    let Ok(permit) = semaphore.clone().try_acquire_owned() else {
        return refuse("the server is at its concurrency limit");
    };
    if long {
        // A watch's response is a stream that outlives the handler: the permit goes with
        // its body, so the cap counts open streams, not just requests being answered.
        let (parts, body) = next(request).await?.into_parts();
        let held = Guarded::new(body, permit);
        return Ok(Response::from_parts(parts, Body::new(held)));
    }
    // A write the store already started still commits if its request times out (one
    // still queued is dropped by the PostgreSQL writer): the caller learns the outcome
    // by retrying with the same request_id.
    match tokio::time::timeout(limits.request_timeout, next(request)).await {
        Ok(result) => result,
        Err(_) => refuse("the request took longer than the server's timeout"),
    }
}
