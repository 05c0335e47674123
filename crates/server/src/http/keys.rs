//! Key management (admin only): create a key (its secret is shown once), list keys
//! (never their secrets), revoke a key (at once).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Router, response::IntoResponse};
use opsd_domain::{ApiKey, NewApiKey, ProjectScope, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::error::{ErrorBody, Result};
use super::extract::{NoQuery, RawPath, ValidJson, uuid_param};

/// Body of `POST /v1/api_keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    /// Human name, recorded as the `user` of operations the key creates.
    pub name: String,
    /// `reader`, `producer` or `admin`.
    pub role: Role,
    /// Project ids the key may touch, or `["*"]` for all.
    pub projects: Vec<String>,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    /// Key id (for revocation).
    pub id: Uuid,
    /// Human name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Project ids, or `["*"]`.
    pub projects: Vec<String>,
    /// The start of the key, to recognise it.
    pub prefix: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(k: ApiKey) -> Self {
        ApiKeyOut {
            id: k.id,
            name: k.name,
            role: k.role,
            projects: k.projects.to_list(),
            prefix: k.prefix,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key, with its secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key's listing.
    #[serde(flatten)]
    pub key: ApiKeyOut,
    /// The secret to send as `Authorization: Bearer <key>`. It is not stored and cannot
    /// be shown again.
    pub key_secret: String,
}

/// All keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Oldest first, revoked keys included.
    pub items: Vec<ApiKeyOut>,
}

/// Create an API key.
#[utoipa::path(
    post, path = "/v1/api_keys", tag = "keys", request_body = ApiKeyIn,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
    ValidJson(body): ValidJson<ApiKeyIn>,
) -> Result<impl IntoResponse> {
    caller.require(Role::Admin)?;
    let projects = ProjectScope::from_list("projects", &body.projects)?;
    let (key, secret) = state
        .keys
        .create_key(NewApiKey {
            name: body.name,
            role: body.role,
            projects,
        })
        .await?;
    tracing::info!(key_id = %key.id, name = %key.name, role = key.role.as_str(), by = %caller.0.name, "api key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: key.into(),
            key_secret: secret,
        }),
    ))
}

/// List API keys (without secrets).
#[utoipa::path(
    get, path = "/v1/api_keys", tag = "keys",
    responses((status = 200, body = ApiKeyList), (status = 403, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    _: NoQuery,
) -> Result<Json<ApiKeyList>> {
    caller.require(Role::Admin)?;
    let keys = state.keys.list_keys().await?;
    Ok(Json(ApiKeyList {
        items: keys.into_iter().map(ApiKeyOut::from).collect(),
    }))
}

/// Revoke an API key, effective at once.
#[utoipa::path(
    delete, path = "/v1/api_keys/{key_id}", tag = "keys",
    params(("key_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    path: RawPath,
    _: NoQuery,
) -> Result<StatusCode> {
    caller.require(Role::Admin)?;
    let id = uuid_param(path, "key_id")?;
    let key = state.keys.revoke_key(id).await?;
    state.auth.forget_cached_keys();
    tracing::info!(key_id = %key.id, name = %key.name, by = %caller.0.name, "api key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Routes under `/v1/api_keys`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/api_keys", get(list).post(create))
        .route("/v1/api_keys/{key_id}", delete(revoke))
}
