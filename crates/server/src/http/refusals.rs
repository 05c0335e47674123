//! Error responses that several endpoints document word for word, for their
//! `#[utoipa::path(responses(…))]`: each is said once here, so the same refusal reads the
//! same everywhere in the contract. A refusal particular to one endpoint stays in its
//! annotation; the ones every endpoint shares (401, 429, 503…) are added by
//! `openapi::contract`.

use utoipa::IntoResponses;

use super::error::ErrorBody;

/// 400 from an endpoint that takes no query parameters (`extract::NoQuery`).
#[derive(IntoResponses)]
#[response(status = 400, description = "A query parameter was sent")]
pub struct QueryParameterSent(pub ErrorBody);

/// 400 from an endpoint whose body broke a rule (`extract::ValidJson`).
#[derive(IntoResponses)]
#[response(status = 400, description = "A field broke its rule")]
pub struct FieldBrokeItsRule(pub ErrorBody);

/// 400 from an endpoint with an operation id in its path and no query parameters.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "`operation_id` is not a UUID, or a query parameter was sent"
)]
pub struct BadOperationIdOrQuery(pub ErrorBody);

/// 403 from an admin endpoint (`auth::Admin`).
#[derive(IntoResponses)]
#[response(status = 403, description = "The key is not an admin")]
pub struct NotAnAdmin(pub ErrorBody);

/// 404 for an operation id: missing and hidden operations answer alike, so that a key
/// cannot learn what exists in projects it may not see.
#[derive(IntoResponses)]
#[response(
    status = 404,
    description = "No such operation, or one the key may not see"
)]
pub struct NoSuchOperation(pub ErrorBody);
