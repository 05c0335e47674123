//! Errors under the Google prefix, in Google's JSON shape:
//! `{"error": {"code", "message", "errors": [{"domain", "reason", "message"}], "status"}}`.
//! The status codes are the Nirvana side's; only the body differs.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::error::ApiError;

/// An [`ApiError`] rendered the Google way.
#[derive(Debug)]
pub struct GoogleError(pub ApiError);

impl<E: Into<ApiError>> From<E> for GoogleError {
    fn from(e: E) -> Self {
        GoogleError(e.into())
    }
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
        if let ApiError::Internal(detail) = &self.0 {
            tracing::error!(%detail, "internal error");
        }
        let (reason, canonical) = reason_and_status(status);
        let message = self.0.to_string();
        let mut error = json!({
            "domain": "global",
            "reason": reason,
            "message": message,
        });
        if let Some(field) = self.0.field() {
            error["location"] = json!(field);
            error["locationType"] = json!("parameter");
        }
        let body = json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "errors": [error],
                "status": canonical,
            }
        });
        let mut response = (status, axum::Json(body)).into_response();
        self.0.extra_headers(response.headers_mut());
        response
    }
}
