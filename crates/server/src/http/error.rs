//! The HTTP layer's one error type. Handlers return `Result<T, ApiError>` and use `?`;
//! the error becomes a response exactly once, here, in the Nirvana shape
//! `{code, message, field?, request_id}`. Internal failures are logged with their
//! detail and reach the client only as a generic message.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opsd_domain::lease::LeaseError;
use opsd_domain::{ChangeError, ValidationError};
use opsd_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use super::request_id;

/// Result of a handler.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Everything a request can fail with, each mapped to one status and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a field broke a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// 401: no key, or not a live key.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// 403: the key's role or projects do not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such operation (or route).
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not with this method.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// 409: the state machine refuses the change.
    #[error("{0}")]
    Conflict(ChangeError),
    /// 409: `request_id` reused with a different body.
    #[error("{0}")]
    IdempotencyConflict(String),
    /// 409: the operation's lease refuses the request.
    #[error("{0}")]
    Lease(LeaseError),
    /// 412: `If-Match` / `expected_version` is stale.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 409: this storage backend cannot do what was asked (the message says what can).
    #[error("{0}")]
    NotSupportedForBackend(String),
    /// 413: body over the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: body is not JSON.
    #[error("request body must be JSON: send the header content-type: application/json")]
    UnsupportedMediaType,
    /// 429: the key sent more requests than its rate allows.
    #[error("rate limit exceeded for this key; retry after {retry_after_s} s")]
    RateLimited {
        /// Seconds until a request would be admitted.
        retry_after_s: u64,
    },
    /// 429: this client address sent too many requests without a valid key.
    #[error(
        "too many requests without a valid API key from this address; retry after {retry_after_s} s"
    )]
    TooManyFailures {
        /// Seconds until a request would be admitted.
        retry_after_s: u64,
    },
    /// 503: the server is at its concurrency limit or a request took too long.
    #[error("{message}; retry after {retry_after_s} s")]
    Overloaded {
        /// What limit was met.
        message: &'static str,
        /// Seconds to wait before retrying.
        retry_after_s: u64,
    },
    /// 503: storage cannot serve now (disk full, database unreachable); the detail goes
    /// to the log only.
    #[error("storage is unavailable (for example the disk is full); retry after {retry_after_s} s")]
    Unavailable {
        /// What failed, for the log.
        detail: String,
        /// Seconds to wait before retrying.
        retry_after_s: u64,
    },
    /// 503: the server is read-only (an operator is moving its store elsewhere).
    #[error(
        "this server is read-only (its store is being moved or maintained): writes are refused \
         until an admin makes it writable again; retry after {retry_after_s} s"
    )]
    ReadOnly {
        /// Seconds to wait before retrying.
        retry_after_s: u64,
    },
    /// 503: the write may or may not have been committed (the database's answer was
    /// lost and could not be recovered); the client reads back or retries idempotently.
    #[error(
        "the write may or may not have been applied (the database's answer was lost); read it back, or retry with the same request_id or If-Match, after {retry_after_s} s"
    )]
    OutcomeUnknown {
        /// What failed, for the log.
        detail: String,
        /// Seconds to wait before retrying.
        retry_after_s: u64,
    },
    /// 500: our fault; the detail goes to the log only.
    #[error("internal error")]
    Internal(String),
}

/// The error body of the Nirvana dialect and of opsd's own endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `not_found`.
    pub code: &'static str,
    /// Human-readable message; what the SDKs print.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request id, as in the `x-request-id` header.
    pub request_id: String,
}

impl ApiError {
    /// Status and machine code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_denied"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(ChangeError::Transition { .. }) => {
                (StatusCode::CONFLICT, "invalid_transition")
            }
            ApiError::Conflict(ChangeError::ProgressDecrease { .. }) => {
                (StatusCode::CONFLICT, "progress_decrease")
            }
            ApiError::Conflict(ChangeError::AlreadyFinished { .. }) => {
                (StatusCode::CONFLICT, "already_finished")
            }
            ApiError::Conflict(ChangeError::NotFinished { .. }) => {
                (StatusCode::CONFLICT, "not_finished")
            }
            ApiError::Conflict(ChangeError::Invalid(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_argument")
            }
            ApiError::IdempotencyConflict(_) => (StatusCode::CONFLICT, "idempotency_conflict"),
            ApiError::Lease(LeaseError::Required { .. }) => {
                (StatusCode::CONFLICT, "lease_required")
            }
            ApiError::Lease(LeaseError::Mismatch) => (StatusCode::CONFLICT, "lease_mismatch"),
            ApiError::Lease(LeaseError::NotHeld) => (StatusCode::CONFLICT, "lease_not_held"),
            ApiError::Lease(LeaseError::Expired { .. }) => (StatusCode::CONFLICT, "lease_expired"),
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            ApiError::NotSupportedForBackend(_) => {
                (StatusCode::CONFLICT, "not_supported_for_backend")
            }
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::RateLimited { .. } | ApiError::TooManyFailures { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            ApiError::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::ReadOnly { .. } => (StatusCode::SERVICE_UNAVAILABLE, "read_only"),
            ApiError::OutcomeUnknown { .. } => (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The offending field, when the error is about one.
    pub fn field(&self) -> Option<String> {
        match self {
            ApiError::Invalid(v) | ApiError::Conflict(ChangeError::Invalid(v)) => {
                Some(v.field.clone())
            }
            ApiError::Conflict(ChangeError::Transition { .. }) => Some("status".into()),
            ApiError::Conflict(ChangeError::ProgressDecrease { .. }) => Some("progress".into()),
            ApiError::Conflict(
                ChangeError::AlreadyFinished { .. } | ChangeError::NotFinished { .. },
            ) => Some("status".into()),
            ApiError::IdempotencyConflict(_) => Some("request_id".into()),
            ApiError::Lease(_) => Some("lease_token".into()),
            _ => None,
        }
    }

    /// Whether the official SDKs should retry: only when waiting could change the answer.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ApiError::Internal(_)
                | ApiError::RateLimited { .. }
                | ApiError::TooManyFailures { .. }
                | ApiError::Overloaded { .. }
                | ApiError::Unavailable { .. }
                | ApiError::ReadOnly { .. }
                | ApiError::OutcomeUnknown { .. }
        )
    }

    /// Headers every rendering of this error carries (`Retry-After`, `WWW-Authenticate`).
    pub fn extra_headers(&self, headers: &mut axum::http::HeaderMap) {
        match self {
            ApiError::RateLimited { retry_after_s }
            | ApiError::TooManyFailures { retry_after_s }
            | ApiError::Overloaded { retry_after_s, .. }
            | ApiError::Unavailable { retry_after_s, .. }
            | ApiError::ReadOnly { retry_after_s }
            | ApiError::OutcomeUnknown { retry_after_s, .. } => {
                headers.insert(
                    axum::http::header::RETRY_AFTER,
                    HeaderValue::from(*retry_after_s),
                );
            }
            ApiError::Unauthenticated(_) => {
                headers.insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"opsd\""),
                );
            }
            _ => {}
        }
        if !self.retryable() {
            // Stainless SDKs retry 409 and 5xx unless told not to.
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => ApiError::NotFound(format!("operation {id} not found")),
            StoreError::KeyNotFound(id) => ApiError::NotFound(format!("api key {id} not found")),
            StoreError::VersionMismatch { .. } => ApiError::PreconditionFailed(e.to_string()),
            StoreError::Change(ChangeError::Invalid(v)) | StoreError::Invalid(v) => {
                ApiError::Invalid(v)
            }
            StoreError::Change(c) => ApiError::Conflict(c),
            StoreError::IdempotencyConflict { .. } => ApiError::IdempotencyConflict(e.to_string()),
            StoreError::Lease(l) => ApiError::Lease(l),
            StoreError::Unavailable(detail) => ApiError::Unavailable {
                detail,
                retry_after_s: 5,
            },
            StoreError::NotSupported(message) => ApiError::NotSupportedForBackend(message),
            StoreError::OutcomeUnknown(detail) => ApiError::OutcomeUnknown {
                detail,
                retry_after_s: 1,
            },
            StoreError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl ApiError {
    /// Logs what the client is not told: an internal error's or an outage's detail.
    pub fn log(&self) {
        match self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable { detail, .. } => {
                tracing::warn!(%detail, "storage unavailable; answering 503");
            }
            ApiError::OutcomeUnknown { detail, .. } => {
                tracing::warn!(%detail, "a write's outcome is unknown; answering 503");
            }
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        self.log();
        let body = ErrorBody {
            code,
            message: self.to_string(),
            field: self.field(),
            // Every request runs inside the request-id layer; an error built outside one
            // (never on the HTTP path) gets an empty id rather than none.
            request_id: request_id::current().unwrap_or_default(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        self.extra_headers(response.headers_mut());
        response
    }
}
