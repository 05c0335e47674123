//! How an [`ApiError`] becomes a gRPC status: the code a Google client expects for the
//! REST status, the message, and in `grpc-status-details-bin` a `google.rpc.Status`
//! with an `ErrorInfo` (the REST error code as `reason`, the field at fault) and, for
//! what may be retried, a `RetryInfo` with the delay REST sends as `Retry-After`.

use axum::response::Response;
use opsd_domain::ChangeError;
use opsd_domain::lro_view::code;
use opsd_grpc_proto::google::rpc;
use prost::Message;
use tonic::Code;

use super::convert::pack;
use crate::http::error::ApiError;

/// The gRPC status of `e`.
pub fn of(e: &ApiError) -> tonic::Status {
    if let ApiError::Internal(detail)
    | ApiError::Unavailable { detail, .. }
    | ApiError::OutcomeUnknown { detail, .. } = e
    {
        tracing::error!(error = %detail, "gRPC request failed");
    }
    let grpc_code = match e {
        ApiError::Invalid(_)
        | ApiError::Conflict(ChangeError::Invalid(_))
        | ApiError::UnsupportedMediaType => code::INVALID_ARGUMENT,
        ApiError::Unauthenticated(_) => code::UNAUTHENTICATED,
        ApiError::Forbidden(_) => code::PERMISSION_DENIED,
        ApiError::NotFound(_) => code::NOT_FOUND,
        ApiError::MethodNotAllowed => code::UNIMPLEMENTED,
        ApiError::Conflict(_)
        | ApiError::Lease(_)
        | ApiError::PreconditionFailed(_)
        | ApiError::NotSupportedForBackend(_) => code::FAILED_PRECONDITION,
        ApiError::IdempotencyConflict(_) => code::ABORTED,
        ApiError::PayloadTooLarge(_)
        | ApiError::RateLimited { .. }
        | ApiError::TooManyFailures { .. } => code::RESOURCE_EXHAUSTED,
        ApiError::Overloaded { .. }
        | ApiError::Unavailable { .. }
        | ApiError::ReadOnly { .. }
        | ApiError::OutcomeUnknown { .. } => code::UNAVAILABLE,
        ApiError::Internal(_) => code::INTERNAL,
    };
    let (_, reason) = e.status_and_code();
    let mut metadata = std::collections::HashMap::new();
    if let Some(field) = e.field() {
        metadata.insert("field".to_owned(), field);
    }
    if let Some(id) = crate::http::request_id::current() {
        metadata.insert("request_id".to_owned(), id);
    }
    let mut details = vec![pack(
        "google.rpc.ErrorInfo",
        &rpc::ErrorInfo {
            reason: reason.to_owned(),
            domain: "opsd".into(),
            metadata,
        },
    )];
    if let Some(seconds) = retry_after(e) {
        details.push(pack(
            "google.rpc.RetryInfo",
            &rpc::RetryInfo {
                retry_delay: Some(prost_types::Duration {
                    seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
                    nanos: 0,
                }),
            },
        ));
    }
    let message = e.to_string();
    let status = rpc::Status {
        code: grpc_code,
        message: message.clone(),
        details,
    };
    tonic::Status::with_details(
        Code::from_i32(grpc_code),
        message,
        status.encode_to_vec().into(),
    )
}

fn retry_after(e: &ApiError) -> Option<u64> {
    match e {
        ApiError::RateLimited { retry_after_s }
        | ApiError::TooManyFailures { retry_after_s }
        | ApiError::Overloaded { retry_after_s, .. }
        | ApiError::Unavailable { retry_after_s, .. }
        | ApiError::ReadOnly { retry_after_s }
        | ApiError::OutcomeUnknown { retry_after_s, .. } => Some(*retry_after_s),
        _ => None,
    }
}

/// `e` as a complete HTTP response (a trailers-only gRPC answer), for the layers in
/// front of the gRPC services: authentication, rate and concurrency limits.
pub fn response(e: &ApiError) -> Response {
    of(e).into_http()
}
