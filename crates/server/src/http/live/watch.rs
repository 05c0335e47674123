//! `GET /v1/operations/watch?project_id=…`: a project's changes as Server-Sent Events.
//! Each change is an `operation` event whose `id:` is the event seq and whose `data:` is
//! the operation as GET returned it at that version; `Last-Event-ID` resumes exactly
//! after that event; a `reset` event says the history after it is gone and the client
//! should re-list. The stream itself is `crate::live::watch`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use opsd_domain::{Kind, OpType, Role, Status, ValidationError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ErrorBody, Result};
use crate::http::extract::QueryParams;
use crate::http::nirvana::models::OperationOut;
use crate::http::nirvana::operations::parse_filter;
use crate::live::watch::{WatchItem, stream};

/// Query parameters of watch: the list filters without paging, sorting or time bounds.
const WATCH_PARAMS: &[&str] = &["project_id", "kind", "status", "type", "resource_id"];

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Data of a `reset` event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WatchReset)]
pub struct ResetData {
    /// Always `reset`.
    code: &'static str,
    /// Why, and what to do.
    message: String,
}

/// Watch a project's operations (Server-Sent Events).
#[utoipa::path(
    get, path = "/v1/operations/watch", tag = "live", operation_id = "watchOperations",
    params(
        ("project_id" = String, Query, description = "Project to watch (required)", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        ("kind" = Option<Kind>, Query), ("status" = Option<Status>, Query),
        ("type" = Option<OpType>, Query), ("resource_id" = Option<String>, Query, pattern = "^[A-Za-z0-9._:/-]{1,128}$"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (`0`: from the oldest retained); empty means from now",
         pattern = "^[0-9]{0,19}$"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
         description = "A stream of Server-Sent Events that does not end by itself:\n\n\
- `event: operation`, `id:` the event seq, `data:` the operation JSON exactly as `GET` returned it at that version (schema `OperationOut`), one per matching change in commit order;\n\
- `event: reset`, `id:` the newest event seq, `data:` `{\"code\": \"reset\", \"message\": …}` (schema `WatchReset`): the history after Last-Event-ID is not all retained, or Last-Event-ID is ahead of this server's newest event; re-list, then keep reading;\n\
- `: keep-alive` comments every 15 s.\n\n\
The stream ends on server shutdown or when the client falls more than 8,192 changes behind; resume with `Last-Event-ID`."),
        (status = 400, body = ErrorBody, description = "A parameter broke its rule, or Last-Event-ID is not a number"),
        (status = 403, body = ErrorBody, description = "The key may not read this project"),
    )
)]
pub async fn watch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let q = QueryParams::parse(raw.as_deref(), WATCH_PARAMS)?;
    let filter = parse_filter(&q)?;
    caller.require_project(Role::Reader, &filter.project_id)?;
    let last_event_id = last_event_id(&headers)?;
    let items = stream(
        state.store.clone(),
        filter,
        last_event_id,
        state.live.shutdown_signal(),
        &state.metrics,
    );
    let events = items.map(|item| Ok(render(item)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

/// Reads `Last-Event-ID` (absent or empty: start from now).
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(raw) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let rule = || ValidationError::new("Last-Event-ID", "must be an event id from this stream");
    let s = raw.to_str().map_err(|_| rule())?.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| rule().into())
}

fn render(item: WatchItem) -> Event {
    match item {
        WatchItem::Change(change) => {
            let op = OperationOut::from((*change.operation).clone());
            Event::default()
                .event("operation")
                .id(change.event_seq.to_string())
                .json_data(op)
                .unwrap_or_else(|e| cannot_render(&e))
        }
        WatchItem::Reset { head, ahead } => Event::default()
            .event("reset")
            .id(head.to_string())
            .json_data(ResetData {
                code: "reset",
                message: if ahead {
                    format!(
                        "your Last-Event-ID is ahead of this server's newest event ({head}): it is \
                         not from this stream's history; list the operations again, then keep \
                         reading: this stream continues after event {head}"
                    )
                } else {
                    format!(
                        "the changes after your Last-Event-ID are no longer all retained; list \
                         the operations again, then keep reading: this stream continues after \
                         event {head}"
                    )
                },
            })
            .unwrap_or_else(|e| cannot_render(&e)),
    }
}

fn cannot_render(e: &axum::Error) -> Event {
    tracing::error!(error = %e, "cannot render a watch event");
    Event::default().comment("an event could not be rendered")
}
