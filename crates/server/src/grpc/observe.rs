//! Every gRPC call's outcome: `opsd_grpc_requests_total{method,code}`,
//! `opsd_grpc_request_duration_seconds{method}` and a request log line with the request
//! id. A call's status is in the response head when it failed before answering
//! (trailers-only), else in the trailers at the end of the body: the body is watched
//! until then. The client's deadline (`grpc-timeout`) is enforced here too.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tonic::Code;

use crate::metrics::{GrpcLabels, GrpcMethodLabels, Metrics};

/// The methods that are counted under their own name; any other path is `other`, so
/// the number of series stays bounded whatever clients send.
const KNOWN_METHODS: &[&str] = &[
    "google.longrunning.Operations/GetOperation",
    "google.longrunning.Operations/ListOperations",
    "google.longrunning.Operations/CancelOperation",
    "google.longrunning.Operations/DeleteOperation",
    "google.longrunning.Operations/WaitOperation",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Middleware step (see `crate::app`) for gRPC requests.
pub async fn observe<F, Fut>(metrics: &Arc<Metrics>, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let path = request.uri().path().trim_start_matches('/');
    let method = KNOWN_METHODS
        .iter()
        .find(|m| **m == path)
        .copied()
        .unwrap_or("other");
    let deadline = request.headers().get("grpc-timeout").map(parse_timeout);
    let recorder = Recorder {
        metrics: metrics.clone(),
        method,
        started: Instant::now(),
        request_id: crate::http::request_id::current().unwrap_or_default(),
    };
    let response = match deadline {
        None => next(request).await,
        Some(Err(())) => tonic::Status::invalid_argument("grpc-timeout: malformed").into_http(),
        Some(Ok(d)) => match tokio::time::timeout(d, next(request)).await {
            Ok(response) => response,
            Err(_) => tonic::Status::deadline_exceeded("the call's deadline passed").into_http(),
        },
    };
    let mut response = response;
    if let Some(mut code) = code_in(response.headers()) {
        if code == Code::OutOfRange {
            // tonic's answer to a message over the size limit; gRPC's is
            // RESOURCE_EXHAUSTED (no method here answers OUT_OF_RANGE itself).
            code = Code::ResourceExhausted;
            response
                .headers_mut()
                .insert("grpc-status", axum::http::HeaderValue::from(code as i32));
        }
        recorder.record(code);
        return response;
    }
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(Watched {
            inner: body,
            recorder: Some(recorder),
        }),
    )
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(value: &axum::http::HeaderValue) -> Result<Duration, ()> {
    let s = value.to_str().map_err(|_| ())?;
    let (digits, unit) = s.split_at(s.len().checked_sub(1).ok_or(())?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let n: u64 = digits.parse().map_err(|_| ())?;
    Ok(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(()),
    })
}

fn code_in(headers: &HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// Records a call once, when its status is known.
struct Recorder {
    metrics: Arc<Metrics>,
    method: &'static str,
    started: Instant,
    request_id: String,
}

impl Recorder {
    fn record(self, code: Code) {
        let latency = self.started.elapsed().as_secs_f64();
        let method = self.method.to_owned();
        self.metrics
            .grpc_request_duration
            .get_or_create(&GrpcMethodLabels {
                method: method.clone(),
            })
            .observe(latency);
        let name = code_name(code);
        self.metrics
            .grpc_requests
            .get_or_create(&GrpcLabels {
                method,
                code: name.to_owned(),
            })
            .inc();
        let latency_ms = latency * 1000.0;
        macro_rules! log_call {
            ($level:expr) => {
                tracing::event!($level, request_id = %self.request_id, method = self.method, code = name, latency_ms, "grpc request")
            };
        }
        match code {
            Code::Ok => log_call!(tracing::Level::DEBUG),
            Code::Internal | Code::Unknown | Code::DataLoss | Code::Unavailable => {
                log_call!(tracing::Level::WARN);
            }
            _ => log_call!(tracing::Level::INFO),
        }
    }
}

/// The canonical upper-case name of a code, as other gRPC servers label it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A response body that records the call when its trailers pass, or as `CANCELLED`
/// when it is dropped before them (the client went away).
struct Watched {
    inner: Body,
    recorder: Option<Recorder>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(code) = f.trailers_ref().and_then(code_in)
                    && let Some(r) = self.recorder.take()
                {
                    r.record(code);
                }
            }
            Some(Err(_)) => {
                if let Some(r) = self.recorder.take() {
                    r.record(Code::Internal);
                }
            }
            None => {
                if let Some(r) = self.recorder.take() {
                    r.record(Code::Unknown);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(r) = self.recorder.take() {
            r.record(Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        let v = |s: &'static str| parse_timeout(&axum::http::HeaderValue::from_static(s));
        assert_eq!(v("5S"), Ok(Duration::from_secs(5)));
        assert_eq!(v("100m"), Ok(Duration::from_millis(100)));
        assert_eq!(v("2H"), Ok(Duration::from_secs(7200)));
        for bad in ["", "S", "5", "5x", "123456789S", "-1S"] {
            assert_eq!(v(bad), Err(()), "{bad}");
        }
    }
}
