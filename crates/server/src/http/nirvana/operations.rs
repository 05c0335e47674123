//! The Nirvana read API (docs/api.md, "Lists"): get one operation, list a project's operations with
//! filters, sort and cursors in both directions.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use opsd_domain::{
    DEFAULT_LIMIT, Kind, ListFilter, MAX_LIMIT, OpType, Operation, PageRequest, Role, Sort, Status,
    ValidationError, validate,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::models::{OperationList, OperationOut, Pagination};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ErrorBody, Result};
use crate::http::extract::{NoQuery, QueryParams, RawPath, resume_list, uuid_param};
use crate::http::refusals::{BadOperationIdOrQuery, NoSuchOperation};
use crate::read_cache::View;

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
    get, path = "/v1/operations/{operation_id}", tag = "operations", operation_id = "getOperation",
    params(("operation_id" = Uuid, Path, description = "Operation id")),
    responses(
        (status = 200, body = OperationOut, description = "The operation", headers(("ETag" = String, description = "The version, quoted: `\"3\"`"))),
        BadOperationIdOrQuery,
        NoSuchOperation,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: RawPath,
    _: NoQuery,
) -> Result<Response> {
    caller.require(Role::Reader)?;
    let id = uuid_param(path, "operation_id")?;
    if let Some(hit) = state.reads.operation(id, &View::Nirvana) {
        caller.require_operation_in(Role::Reader, id, &hit.project)?;
        return Ok(json_response(Some(hit.version), hit.body));
    }
    // Taken before the read: an answer that a change overtook is not kept.
    let ticket = state.reads.ticket();
    let op = state.store.get(id).await?.ok_or_else(|| not_found(id))?;
    caller.require_operation(Role::Reader, &op)?;
    let (version, project) = (op.version, op.project_id.clone());
    let body = render(&OperationOut::from(op))?;
    state
        .reads
        .keep_operation(ticket, id, View::Nirvana, version, &project, body.clone());
    Ok(json_response(Some(version), body))
}

/// List Operations.
#[utoipa::path(
    get, path = "/v1/operations", tag = "operations", operation_id = "listOperations",
    params(
        ("project_id" = String, Query, description = "Project whose operations to list (required)", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        ("kind" = Option<Kind>, Query), ("status" = Option<Status>, Query),
        ("type" = Option<OpType>, Query), ("resource_id" = Option<String>, Query, pattern = "^[A-Za-z0-9._:/-]{1,128}$"),
        ("created_at_min" = Option<String>, Query, format = DateTime, description = "RFC 3339, inclusive; not after created_at_max"),
        ("created_at_max" = Option<String>, Query, format = DateTime, description = "RFC 3339, inclusive"),
        ("sort" = Option<String>, Query, description = "Comma-separated `field:asc|desc` over created_at, updated_at, each field at most once; default created_at:desc",
         pattern = "^(created_at|updated_at):(asc|desc)(,(created_at|updated_at):(asc|desc))?$"),
        ("cursor" = Option<String>, Query, description = "next_cursor or previous_cursor of a page of this same list (same filters and sort); empty means the first page"),
        ("limit" = Option<u32>, Query, description = "Page size, default 10", minimum = 1, maximum = 100),
    ),
    responses(
        (status = 200, body = OperationList, description = "One page"),
        (status = 400, body = ErrorBody, description = "A parameter broke its rule (`field` names it), or is unknown or repeated"),
        (status = 403, body = ErrorBody, description = "The key may not read this project"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
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
    let (scope, cursor) = resume_list("cursor", q.get("cursor"), &filter, &sort)?;
    // Everything the page depends on: the filters and sort (in `scope`), the size and
    // the cursor as sent (an empty cursor and none are both the first page).
    let query = format!("{scope}|{limit}|{}", q.get("cursor").unwrap_or_default());
    if let Some(hit) = state.reads.page(&filter.project_id, &query) {
        return Ok(json_response(None, hit.body));
    }
    let ticket = state.reads.ticket();
    let page = state
        .store
        .list(
            &filter,
            &sort,
            &PageRequest {
                cursor,
                limit,
                count_total: true,
            },
        )
        .await?;
    let body = render(&OperationList {
        items: page.items.into_iter().map(OperationOut::from).collect(),
        pagination: Pagination {
            next_cursor: page.next.map(|c| c.encode(&scope)),
            previous_cursor: page.prev.map(|c| c.encode(&scope)),
            total_count: page.total_count,
        },
    })?;
    state
        .reads
        .keep_page(ticket, &filter.project_id, query, body.clone());
    Ok(json_response(None, body))
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

/// The JSON rendering of `value`, byte for byte what `axum::Json` sends.
fn render(value: &impl serde::Serialize) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("cannot render JSON: {e}")))
}

/// A rendered JSON body with the headers `axum::Json` and [`with_etag`] give it, in the
/// same order (`content-type`, then `etag`), so a cached answer is the same on the wire.
fn json_response(version: Option<u64>, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(v) = version.and_then(etag) {
        headers.insert(header::ETAG, v);
    }
    response
}

/// `"<version>"`, the ETag of an operation at `version`.
fn etag(version: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{version}\"")).ok()
}

/// Adds `ETag: "<version>"` to a response.
pub fn with_etag(version: u64, body: impl IntoResponse) -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    if let Some(v) = etag(version) {
        headers.insert(header::ETAG, v);
    }
    (headers, body)
}
