//! The Nirvana read API (README, "Lists"): get one operation, list a project's operations with
//! filters, sort and cursors in both directions.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use opsd_domain::{
    Cursor, DEFAULT_LIMIT, Kind, ListFilter, MAX_LIMIT, OpType, Operation, PageRequest, Role, Sort,
    Status, ValidationError, validate,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::models::{OperationList, OperationOut, Pagination};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ErrorBody, Result};
use crate::http::extract::{NoQuery, QueryParams, RawPath, uuid_param};

/// Query parameters of the list (and, minus the paging ones, of watch).
const LIST_PARAMS: &[&str] = &[
    "project_id",
    "kind",
    "status",
    "type",
    "resource_id",
    "created_at_min",
    "created_at_max",
    "sort",
    "cursor",
    "limit",
];

/// Get Operation Details.
#[utoipa::path(
    get, path = "/v1/operations/{operation_id}", tag = "operations",
    params(("operation_id" = Uuid, Path, description = "Operation id")),
    responses(
        (status = 200, body = OperationOut, headers(("etag" = String, description = "The version, quoted"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: RawPath,
    _: NoQuery,
) -> Result<impl IntoResponse> {
    let op = load_visible(&state, &caller, Role::Reader, path).await?;
    Ok(with_etag(op.version, Json(OperationOut::from(op))))
}

/// List Operations.
#[utoipa::path(
    get, path = "/v1/operations", tag = "operations",
    params(
        ("project_id" = String, Query, description = "Project whose operations to list (required)"),
        ("kind" = Option<Kind>, Query), ("status" = Option<Status>, Query),
        ("type" = Option<OpType>, Query), ("resource_id" = Option<String>, Query),
        ("created_at_min" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("created_at_max" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("sort" = Option<String>, Query, description = "Comma-separated `field:asc|desc` over created_at, updated_at; default created_at:desc"),
        ("cursor" = Option<String>, Query, description = "next_cursor or previous_cursor of a page of this same list"),
        ("limit" = Option<u32>, Query, description = "1–100, default 10"),
    ),
    responses((status = 200, body = OperationList), (status = 400, body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<OperationList>> {
    let q = QueryParams::parse(raw.as_deref(), LIST_PARAMS)?;
    let filter = parse_filter(&q)?;
    caller.require_project(Role::Reader, &filter.project_id)?;
    let sort = q
        .get("sort")
        .map(Sort::parse_nirvana)
        .transpose()?
        .unwrap_or_default();
    let limit = q
        .parse_with(
            "limit",
            &format!("must be an integer from 1 to {MAX_LIMIT}"),
            |v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
            },
        )?
        .unwrap_or(DEFAULT_LIMIT);
    // A cursor is only valid for the filters and sort it was made for; the page size
    // may change from page to page.
    let scope = format!("{}|{}", filter.canonical(), sort.canonical());
    let cursor = q
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(|c| Cursor::decode_for("cursor", c, &scope, &sort))
        .transpose()?;
    let page = state
        .store
        .list(&filter, &sort, &PageRequest { cursor, limit })
        .await?;
    Ok(Json(OperationList {
        items: page.items.into_iter().map(OperationOut::from).collect(),
        pagination: Pagination {
            next_cursor: page.next.map(|c| c.encode(&scope)),
            previous_cursor: page.prev.map(|c| c.encode(&scope)),
            total_count: page.total_count,
        },
    }))
}

/// Reads the Nirvana filters (`project_id` required) from a query.
pub fn parse_filter(q: &QueryParams) -> Result<ListFilter> {
    let project_id = q
        .get("project_id")
        .ok_or_else(|| ValidationError::new("project_id", "is required"))?
        .to_owned();
    validate::project_id("project_id", &project_id)?;
    let one_of = |expected: String| format!("must be one of: {expected}");
    let resource_id = q.get("resource_id").map(str::to_owned);
    if let Some(r) = &resource_id {
        validate::resource_id("resource_id", r)?;
    }
    let time_rule = "must be an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z";
    let filter = ListFilter {
        project_id,
        kind: q.parse_with("kind", &one_of(Kind::expected()), Kind::parse)?,
        status: q.parse_with("status", &one_of(Status::expected()), Status::parse)?,
        op_type: q.parse_with("type", &one_of(OpType::expected()), OpType::parse)?,
        resource_id,
        created_at_min: q.parse_with("created_at_min", time_rule, parse_time)?,
        created_at_max: q.parse_with("created_at_max", time_rule, parse_time)?,
        expr: None,
    };
    if let (Some(min), Some(max)) = (filter.created_at_min, filter.created_at_max)
        && min > max
    {
        return Err(
            ValidationError::new("created_at_min", "must not be after created_at_max").into(),
        );
    }
    Ok(filter)
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Loads the operation named in the path, if the caller may act on it with `role`;
/// an operation the caller may not see is a 404, as if it did not exist.
pub async fn load_visible(
    state: &AppState,
    caller: &Caller,
    role: Role,
    path: RawPath,
) -> Result<Operation> {
    caller.require(role)?;
    let id = uuid_param(path, "operation_id")?;
    let op = state.store.get(id).await?.ok_or_else(|| not_found(id))?;
    caller.require_operation(role, &op)?;
    Ok(op)
}

/// The 404 for an operation that does not exist (or that the caller may not see).
pub fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("operation {id} not found"))
}

/// Adds `ETag: "<version>"` to a response.
pub fn with_etag(version: u64, body: impl IntoResponse) -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(header::ETAG, v);
    }
    (headers, body)
}
