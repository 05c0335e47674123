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

/// Body of a `reset` event.
#[derive(Debug, Serialize)]
struct ResetData {
    code: &'static str,
    message: String,
}

/// Watch a project's operations (Server-Sent Events).
#[utoipa::path(
    get, path = "/v1/operations/watch", tag = "live",
    params(
        ("project_id" = String, Query, description = "Project to watch (required)"),
        ("kind" = Option<Kind>, Query), ("status" = Option<Status>, Query),
        ("type" = Option<OpType>, Query), ("resource_id" = Option<String>, Query),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event (0: from the oldest retained)"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
         description = "`event: operation` per change (`id:` event seq, `data:` the operation JSON); `event: reset` when the history after Last-Event-ID is gone; a keep-alive comment every 15 s"),
        (status = 400, body = ErrorBody),
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
        WatchItem::Reset { head } => Event::default()
            .event("reset")
            .id(head.to_string())
            .json_data(ResetData {
                code: "reset",
                message: format!(
                    "the changes after your Last-Event-ID are no longer all retained; list the \
                     operations again, then keep reading: this stream continues after event {head}"
                ),
            })
            .unwrap_or_else(|e| cannot_render(&e)),
    }
}

fn cannot_render(e: &axum::Error) -> Event {
    tracing::error!(error = %e, "cannot render a watch event");
    Event::default().comment("an event could not be rendered")
}
