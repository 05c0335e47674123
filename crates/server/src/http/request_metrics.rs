//! Request metrics (a middleware) and `GET /metrics`. Requests are labelled with the
//! route pattern the router matched (`/v1/operations/{operation_id}`), never the raw
//! path, so the number of series stays bounded whatever clients send.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};

/// The content type of the OpenMetrics text format, which Prometheus scrapes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Middleware step (see `crate::app`): counts every request run by `next` by method,
/// route and status, and observes its latency to the response head.
pub async fn observe<F, Fut>(metrics: &Metrics, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method()).to_owned();
    let started = Instant::now();
    let response = next(request).await;
    let labels = RouteLabels { method, route };
    metrics
        .request_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: labels.method,
            route: labels.route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Standard methods by name; anything else as `other`, so labels stay bounded.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(
    get, path = "/metrics", tag = "system", operation_id = "getMetrics",
    responses((status = 200, content_type = "application/openmetrics-text", body = String, description = "The metrics"))
)]
pub async fn export(State(state): State<AppState>) -> Response {
    let alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    state
        .metrics
        .tasks
        .set(i64::try_from(alive).unwrap_or(i64::MAX));
    // The lease count lives in the store (leases outlive restarts); read it per scrape.
    match state.store.leases_held().await {
        Ok(n) => {
            state
                .metrics
                .leases_held
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Err(e) => tracing::warn!(error = %e, "cannot count leases for /metrics"),
    }
    // Counted elsewhere (the store, the read cache, the supervisor, the log writer);
    // the exported counters catch up.
    let (hits, misses) = state.reads.hits_and_misses();
    let restarts: Vec<_> = opsd_store::supervise::restarts()
        .into_iter()
        .map(|(worker, n)| {
            let labels = crate::metrics::WorkerLabels {
                worker: worker.to_owned(),
            };
            (
                state.metrics.worker_restarts.get_or_create_owned(&labels),
                n,
            )
        })
        .collect();
    let conflicts = state.store.write_conflicts();
    let caught_up = [
        (&state.metrics.feed_gaps, state.store.feed_gaps()),
        (
            &state.metrics.feed_store_reads,
            state.store.feed_store_reads(),
        ),
        (&state.metrics.write_batches_retried, conflicts.retried),
        (&state.metrics.write_batches_restamped, conflicts.restamped),
        (&state.metrics.read_cache_hits, hits),
        (&state.metrics.read_cache_misses, misses),
        (&state.metrics.log_write_errors, crate::log::write_errors()),
        (&state.metrics.log_lines_dropped, crate::log::dropped()),
    ];
    let restarts = restarts.iter().map(|(counter, n)| (counter, *n));
    for (counter, now) in caught_up.into_iter().chain(restarts) {
        let counted = counter.get();
        if now > counted {
            counter.inc_by(now - counted);
        }
    }
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
