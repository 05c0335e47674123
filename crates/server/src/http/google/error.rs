//! Errors under the Google prefix, in Google's JSON shape:
//! `{"error": {"code", "message", "errors": [{"domain", "reason", "message"}], "status"}}`.
//! The status codes are the Nirvana side's; only the body differs.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::http::error::ApiError;

/// An [`ApiError`] rendered the Google way.
#[derive(Debug)]
pub struct GoogleError(pub ApiError);

impl<E: Into<ApiError>> From<E> for GoogleError {
    fn from(e: E) -> Self {
        GoogleError(e.into())
    }
}

/// The error body of the Google dialect.
#[derive(Debug, Serialize, ToSchema)]
pub struct GoogleErrorBody {
    /// The error.
    pub error: GoogleErrorStatus,
}

/// The refusals a request for one operation by its Google name may get (its get and its
/// wait), documented once for both.
#[derive(IntoResponses)]
pub enum NamedOperationRefusal {
    /// The name is malformed, or a parameter is.
    #[response(
        status = 400,
        description = "`project` or `operation` cannot be a name, or a parameter broke its rule"
    )]
    BadRequest(GoogleErrorBody),
    /// Missing, in another project, or hidden from the caller: all answer alike.
    #[response(
        status = 404,
        description = "No such operation in this project, or one the key may not see"
    )]
    NotFound(GoogleErrorBody),
}

/// Google's error: HTTP code, message, details and canonical status.
#[derive(Debug, Serialize, ToSchema)]
pub struct GoogleErrorStatus {
    /// The HTTP status code.
    pub code: u16,
    /// Human-readable message.
    pub message: String,
    /// One entry, with the reason.
    pub errors: Vec<GoogleErrorItem>,
    /// Google's canonical status, e.g. `NOT_FOUND`.
    pub status: &'static str,
}

/// One entry of `errors`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GoogleErrorItem {
    /// Always `global`.
    pub domain: &'static str,
    /// Google's reason, e.g. `notFound`, `invalid`, `required`.
    pub reason: &'static str,
    /// The same message as above.
    pub message: String,
    /// The parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `parameter` when `location` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_type: Option<&'static str>,
}

/// Google's `reason` and canonical `status` for an HTTP status.
fn reason_and_status(code: StatusCode) -> (&'static str, &'static str) {
    match code.as_u16() {
        400 | 413 | 415 => ("invalid", "INVALID_ARGUMENT"),
        401 => ("required", "UNAUTHENTICATED"),
        403 => ("forbidden", "PERMISSION_DENIED"),
        404 => ("notFound", "NOT_FOUND"),
        405 => ("httpMethodNotAllowed", "INVALID_ARGUMENT"),
        409 => ("conflict", "ABORTED"),
        412 => ("conditionNotMet", "FAILED_PRECONDITION"),
        429 => ("rateLimitExceeded", "RESOURCE_EXHAUSTED"),
        503 => ("backendError", "UNAVAILABLE"),
        _ => ("backendError", "INTERNAL"),
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let (status, _) = self.0.status_and_code();
        self.0.log();
        let (reason, canonical) = reason_and_status(status);
        let message = self.0.to_string();
        let location = self.0.field();
        let body = GoogleErrorBody {
            error: GoogleErrorStatus {
                code: status.as_u16(),
                errors: vec![GoogleErrorItem {
                    domain: "global",
                    reason,
                    message: message.clone(),
                    location_type: location.is_some().then_some("parameter"),
                    location,
                }],
                message,
                status: canonical,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        self.0.extra_headers(response.headers_mut());
        response
    }
}
