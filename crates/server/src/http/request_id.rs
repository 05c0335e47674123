//! A request id on every request and response (`x-request-id`), plus one log line per
//! request (successes at debug level). The id — and the caller's trace context, for the
//! operation the request may create — is kept in a task-local so that error bodies can
//! carry it without every handler threading it through.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use opsd_domain::TraceContext;
use tracing::Instrument;

use super::trace;

/// What a request's handlers may ask about it without threading it through.
struct Scope {
    /// Kept as the header value it is sent as: one allocation per request, shared by
    /// the task-local, the response header and the log line (only error bodies copy it).
    id: HeaderValue,
    /// The caller's W3C trace context, kept only while export is off (on, the request's
    /// span carries it).
    incoming_trace: Option<TraceContext>,
}

tokio::task_local! {
    static REQUEST: Scope;
}

/// The id of the request being handled, if called inside one.
pub fn current() -> Option<String> {
    REQUEST
        .try_with(|r| r.id.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

/// The trace context to keep with an operation this request creates: the request's own
/// span when export is on (so a claim links to it), otherwise what the caller sent (kept
/// in the request's scope for this alone).
pub fn creation_context() -> Option<TraceContext> {
    if opsd_store::trace::enabled() {
        opsd_store::trace::context_of(&tracing::Span::current())
    } else {
        REQUEST
            .try_with(|r| r.incoming_trace.clone())
            .ok()
            .flatten()
    }
}

/// A fresh request id: a UUIDv7 (time-ordered, as before) whose random bits come from
/// a per-process random seed and a counter, mixed. `Uuid::now_v7` asks the kernel for
/// random bytes on every call, a system call per request (measured with perf); ids only
/// need to be unique, not unpredictable.
fn new_id() -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| uuid::Uuid::now_v7().as_u64_pair().1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // SplitMix64 is a bijection of its input: distinct counters give distinct bits.
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&z.to_le_bytes());
    random[8..].copy_from_slice(&seed.to_le_bytes()[..2]);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

/// Middleware: adopts a sane incoming `x-request-id` or makes one, runs the request
/// inside its scope, echoes it on the response and logs the outcome.
pub async fn layer(request: Request, next: Next) -> Response {
    let incoming = request
        .headers()
        .get("x-request-id")
        .filter(|v| {
            let v = v.as_bytes();
            !v.is_empty() && v.len() <= 128 && v.iter().all(u8::is_ascii_graphic)
        })
        .cloned();
    // A UUID is always a valid header value; the fallback is never taken.
    let id = incoming.unwrap_or_else(|| {
        HeaderValue::try_from(new_id()).unwrap_or(HeaderValue::from_static("-"))
    });
    // The URI's parts share the request's buffer: cloning it copies no path.
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let started = Instant::now();
    let incoming = trace::incoming(request.headers());
    let span = opsd_store::trace::enabled()
        .then(|| trace::request_span(&request, incoming.as_ref(), id.to_str().unwrap_or("-")));
    let scope = Scope {
        id: id.clone(),
        incoming_trace: if span.is_some() { None } else { incoming },
    };
    let handled = REQUEST.scope(scope, next.run(request));
    let mut response = match &span {
        Some(span) => handled.instrument(span.clone()).await,
        None => handled.await,
    };
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Successes are logged at debug: at tens of thousands of requests a second, a line
    // each costs about a third of a GET (measured); `/metrics` counts them instead.
    // Refusals are worth a line at info, server errors at warn.
    macro_rules! log_request {
        ($level:expr) => {
            tracing::event!($level, request_id = %id.to_str().unwrap_or("-"), %method, path = %uri.path(), status, latency_ms, "request")
        };
    }
    let log = || match status {
        500.. => log_request!(tracing::Level::WARN),
        400..=499 => log_request!(tracing::Level::INFO),
        _ => log_request!(tracing::Level::DEBUG),
    };
    match &span {
        // Inside the span, so that the line carries its trace and span ids.
        Some(span) => {
            trace::finish(span, status);
            span.in_scope(log);
        }
        None => log(),
    }
    response.headers_mut().insert("x-request-id", id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_distinct_uuid_v7s() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
        }
    }
}
