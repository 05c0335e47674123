//! `operations.get` and `operations.list` of Deployment Manager v2, served from the same
//! store as the Nirvana dialect. Filters become part of the store's query, so a page holds
//! `maxResults` items whenever that many match.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use opsd_domain::duration::{DEFAULT_WAIT, parse_wait_timeout};
use opsd_domain::google_filter;
use opsd_domain::{
    ListFilter, PageRequest, Role, Sort, SortField, SortTerm, ValidationError, google_view,
    validate,
};
use uuid::Uuid;

use super::error::{GoogleError, GoogleErrorBody, NamedOperationRefusal};
use super::models::{GoogleOperation, GoogleOperationList};
use super::params::{ClientHost, Layout, STANDARD_PARAMS, respond};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::extract::{QueryParams, resume_list};
use crate::read_cache::View;

type Result<T> = std::result::Result<T, GoogleError>;

/// Largest and default `maxResults`.
const MAX_RESULTS: usize = 500;

/// Gets information about a specific operation.
#[utoipa::path(
    get, path = "/deploymentmanager/v2/projects/{project}/global/operations/{operation}", tag = "google", operation_id = "googleGetOperation",
    params(
        ("project" = String, Path, description = "The project ID", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        ("operation" = String, Path, description = "The operation name, `operation-<uuid>` (the bare UUID is accepted too); any other name of this form is simply not found", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
    ),
    responses(
        (status = 200, body = GoogleOperation, description = "The operation"),
        NamedOperationRefusal,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, operation)): Path<(String, String)>,
    host: ClientHost,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let q = QueryParams::parse(raw.as_deref(), &allowed(&[]))?;
    let layout = Layout::of(&q)?;
    let id = operation_id(&project, &operation)?;
    let base = host.base_url(state.scheme);
    // Deployment Manager's clients poll this: served from the read cache as the other
    // dialects' gets are, checked the same way as a read from the store.
    let view = layout
        .cache_name(&base)
        .map(|name| View::Google(name.into()));
    if let Some(hit) = view.as_ref().and_then(|v| state.reads.operation(id, v)) {
        if *hit.project != *project {
            return Err(not_found(&operation));
        }
        caller.require_operation_in(Role::Reader, id, &hit.project)?;
        return Ok(respond(hit.body));
    }
    // Taken before the read: an answer that a change overtook is not kept.
    let ticket = state.reads.ticket();
    let op = visible(&state, &caller, &project, &operation, id).await?;
    let (version, kept_in) = (op.version, op.project_id.clone());
    let body = Bytes::from(layout.text(&GoogleOperation::new(op, &base))?);
    if let Some(view) = view {
        state
            .reads
            .keep_operation(ticket, id, view, version, &kept_in, body.clone());
    }
    Ok(respond(body))
}

/// Waits for an operation to finish, as Compute Engine's `operations.wait`: answers as
/// soon as it is DONE, or with its current state when `timeout` (an opsd extension, 0s–120s,
/// default 60s) passes.
#[utoipa::path(
    post, path = "/deploymentmanager/v2/projects/{project}/global/operations/{operation}/wait", tag = "google", operation_id = "googleWaitOperation",
    params(
        ("project" = String, Path, description = "The project ID", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        ("operation" = String, Path, description = "The operation name, `operation-<uuid>` (the bare UUID is accepted too)", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        ("timeout" = Option<String>, Query, description = "How long to wait, 0–120 s: `30s`, `2m`, `1m30s` or `500ms`; default 60s", pattern = "^(([0-9]|[1-9][0-9]|1[01][0-9]|120)s|[0-2]m|1m([0-9]|[1-5][0-9])s|([0-9]|[1-9][0-9]{1,4}|1[01][0-9]{4}|120000)ms)$"),
    ),
    responses(
        (status = 200, body = GoogleOperation, description = "The operation: DONE, or as it is when the timeout passed"),
        NamedOperationRefusal,
    )
)]
pub async fn wait(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, operation)): Path<(String, String)>,
    host: ClientHost,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let q = QueryParams::parse(raw.as_deref(), &allowed(&["timeout"]))?;
    // Read before the wait: a malformed mask is refused at once, not after the timeout.
    let layout = Layout::of(&q)?;
    let timeout = q
        .get("timeout")
        .map(|t| parse_wait_timeout("timeout", t))
        .transpose()?
        .unwrap_or(DEFAULT_WAIT);
    let id = operation_id(&project, &operation)?;
    // Registered before the read: a write committed in between is read or delivered.
    let me = state.live.waiters.register(id);
    // Visibility first: a hidden operation answers 404 at once, like a missing one.
    let op = visible(&state, &caller, &project, &operation, id).await?;
    let op = if op.status.is_terminal() {
        op
    } else {
        let deadline = tokio::time::Instant::now() + timeout;
        me.sleep(
            &*state.store,
            op.version,
            deadline,
            state.live.shutdown_signal(),
        )
        .await?
        .ok_or_else(|| not_found(&operation))?
    };
    let base = host.base_url(state.scheme);
    Ok(respond(layout.text(&GoogleOperation::new(op, &base))?))
}

/// Loads an operation of `project` by its Google name, if the caller may read it; 404 if
/// it is missing, in another project, or hidden from the caller.
pub async fn find_visible(
    state: &AppState,
    caller: &Caller,
    project: &str,
    operation: &str,
) -> Result<opsd_domain::Operation> {
    let id = operation_id(project, operation)?;
    visible(state, caller, project, operation, id).await
}

/// The id an operation's Google name stands for. Google's names are opaque: a name that
/// could be one but is not opsd's form (`operation-does-not-exist`) is simply not found;
/// only a name that cannot be a name at all is a 400.
fn operation_id(project: &str, operation: &str) -> Result<Uuid> {
    validate::project_id("project", project)?;
    validate::project_id("operation", operation)?;
    google_view::parse_name(operation).ok_or_else(|| not_found(operation))
}

/// Operation `id` (named `operation`), if it is in `project` and the caller may read it.
async fn visible(
    state: &AppState,
    caller: &Caller,
    project: &str,
    operation: &str,
    id: Uuid,
) -> Result<opsd_domain::Operation> {
    let op = match state.store.get(id).await? {
        Some(op) if op.project_id == project => op,
        _ => return Err(not_found(operation)),
    };
    caller.require_operation(Role::Reader, &op)?;
    Ok(op)
}

fn not_found(operation: &str) -> GoogleError {
    crate::http::error::ApiError::NotFound(format!("operation {operation} not found")).into()
}

/// Lists all operations for a project.
#[utoipa::path(
    get, path = "/deploymentmanager/v2/projects/{project}/global/operations", tag = "google", operation_id = "googleListOperations",
    params(
        ("project" = String, Path, description = "The project ID", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        ("filter" = Option<String>, Query, max_length = 4096, description = "AIP-160 comparisons (`status = DONE AND progress >= 50`) or Compute-style regular expressions (`(name eq 'operation-.*')`), at most 4,096 bytes, 32 levels of parentheses and 16 regular expressions; see the README for the fields"),
        ("maxResults" = Option<u32>, Query, description = "Page size; 0 or absent means 500", minimum = 0, maximum = 500),
        ("orderBy" = Option<String>, Query, description = "`name` (default) or `creationTimestamp`, optionally followed by `asc` or `desc`",
         pattern = "^(name|creationTimestamp)( +(asc|desc))? *$"),
        ("pageToken" = Option<String>, Query, description = "nextPageToken of the previous page of this same list; empty means the first page"),
    ),
    responses(
        (status = 200, body = GoogleOperationList, description = "One page"),
        (status = 400, body = GoogleErrorBody, description = "A parameter broke its rule (the message says where a filter broke)"),
        (status = 403, body = GoogleErrorBody, description = "The key may not read this project"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    host: ClientHost,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let q = QueryParams::parse(
        raw.as_deref(),
        &allowed(&["filter", "maxResults", "orderBy", "pageToken"]),
    )?;
    let layout = Layout::of(&q)?;
    validate::project_id("project", &project)?;
    caller.require_project(Role::Reader, &project)?;
    let expr = match q.get("filter") {
        Some(text) => google_filter::parse(text)
            .map_err(|e| ValidationError::new("filter", e.to_string()))?
            .map(google_view::truncate_times),
        None => None,
    };
    let limit = q
        .parse_with(
            "maxResults",
            &format!("must be an integer from 0 to {MAX_RESULTS}"),
            |v| v.parse::<usize>().ok().filter(|n| *n <= MAX_RESULTS),
        )?
        .filter(|n| *n > 0)
        .unwrap_or(MAX_RESULTS);
    let sort = q
        .get("orderBy")
        .map(parse_order_by)
        .transpose()?
        .unwrap_or_else(|| by(SortField::Name, false));
    let filter = ListFilter {
        project_id: project,
        expr,
        ..ListFilter::default()
    };
    let (scope, cursor) = resume_list("pageToken", q.get("pageToken"), &filter, &sort)?;
    let page = state
        .store
        .list(
            &filter,
            &sort,
            // Google's list has no total: do not count.
            &PageRequest {
                cursor,
                limit,
                count_total: false,
            },
        )
        .await?;
    let base = host.base_url(state.scheme);
    let body = GoogleOperationList {
        operations: page
            .items
            .into_iter()
            .map(|op| GoogleOperation::new(op, &base))
            .collect(),
        next_page_token: page.next.map(|c| c.encode(&scope)),
    };
    Ok(respond(layout.text(&body)?))
}

fn by(field: SortField, descending: bool) -> Sort {
    Sort::new(vec![SortTerm { field, descending }]).unwrap_or_default()
}

/// `name` or `creationTimestamp`, optionally followed by `asc` or `desc`.
fn parse_order_by(s: &str) -> std::result::Result<Sort, ValidationError> {
    let mut words = s.split_whitespace();
    let field = match words.next() {
        Some("name") => SortField::Name,
        Some("creationTimestamp") => SortField::CreatedAt,
        _ => {
            return Err(ValidationError::new(
                "orderBy",
                "must be 'name' or 'creationTimestamp desc'",
            ));
        }
    };
    let descending = match (words.next(), words.next()) {
        (None | Some("asc"), None) => false,
        (Some("desc"), None) => true,
        _ => {
            return Err(ValidationError::new(
                "orderBy",
                "the direction must be 'asc' or 'desc'",
            ));
        }
    };
    Ok(by(field, descending))
}

/// The standard parameters plus a method's own.
fn allowed(own: &[&'static str]) -> Vec<&'static str> {
    STANDARD_PARAMS.iter().chain(own).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_forms() {
        assert_eq!(parse_order_by("name").unwrap(), by(SortField::Name, false));
        assert_eq!(
            parse_order_by("creationTimestamp desc").unwrap(),
            by(SortField::CreatedAt, true)
        );
        assert_eq!(
            parse_order_by("name  asc").unwrap(),
            by(SortField::Name, false)
        );
        assert!(parse_order_by("status").is_err());
        assert!(parse_order_by("name sideways").is_err());
        assert!(parse_order_by("name desc extra").is_err());
    }
}
