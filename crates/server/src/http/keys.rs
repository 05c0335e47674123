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
use super::auth::{Admin, Caller};
use super::error::{ErrorBody, Result};
use super::extract::{NoQuery, RawPath, ValidJson, uuid_param};
use super::refusals::{FieldBrokeItsRule, NotAnAdmin, QueryParameterSent};

/// Body of `POST /v1/api_keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    /// Human name, recorded as the `user` of operations the key creates: 1–128
    /// characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
    /// `reader`, `producer` or `admin`.
    pub role: Role,
    /// 1–100 project ids the key may touch, or `["*"]` (alone) for all.
    #[schema(schema_with = projects_schema)]
    pub projects: Vec<String>,
}

/// `["*"]`, or 1–100 project ids.
fn projects_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let string = || ObjectBuilder::new().schema_type(Type::String);
    OneOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(string().enum_values(Some(["*"])))
                .min_items(Some(1))
                .max_items(Some(1)),
        )
        .item(
            ArrayBuilder::new()
                .items(string().pattern(Some(opsd_domain::validate::PROJECT_ID_PATTERN)))
                .min_items(Some(1))
                .max_items(Some(opsd_domain::validate::MAX_LIST_ITEMS)),
        )
        .build()
        .into()
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
    post, path = "/v1/api_keys", tag = "keys", request_body = ApiKeyIn, operation_id = "createApiKey",
    responses(
        (status = 201, body = CreatedApiKey, description = "The key, with its secret (shown this once)"),
        FieldBrokeItsRule,
        NotAnAdmin,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    _: NoQuery,
    ValidJson(body): ValidJson<ApiKeyIn>,
) -> Result<impl IntoResponse> {
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
    get, path = "/v1/api_keys", tag = "keys", operation_id = "listApiKeys",
    responses(
        (status = 200, body = ApiKeyList, description = "Every key, never a secret"),
        QueryParameterSent,
        NotAnAdmin,
    )
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
    delete, path = "/v1/api_keys/{key_id}", tag = "keys", operation_id = "revokeApiKey",
    params(("key_id" = Uuid, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, body = ErrorBody, description = "`key_id` is not a UUID, or a query parameter was sent"),
        NotAnAdmin,
        (status = 404, body = ErrorBody, description = "No such key"),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Admin(caller): Admin,
    path: RawPath,
    _: NoQuery,
) -> Result<StatusCode> {
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
