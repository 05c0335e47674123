//! `GET /v1/operations/watch?project_id=…`: a project's changes as Server-Sent Events.
//! Each change is an `operation` event whose `id:` is `<epoch>-<seq>` (the store's epoch
//! and the event seq) and whose `data:` is the operation as GET returned it at that
//! version; `Last-Event-ID` resumes exactly after that event; a `reset` event says the
//! history after it is gone (or the id is from another epoch of the store) and the
//! client should re-list. The stream itself is `crate::background::watch`.
//!
//! A bare number is still accepted as `Last-Event-ID` and read as a seq of the current
//! epoch: `0` (from the oldest retained change) is a documented starting point, the SDK
//! and CLI let callers start after a seq, and ids saved from a server from before epochs
//! are plain seqs of the epoch that the store's migration then named.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use opsd_domain::{Kind, OpType, Role, Status, ValidationError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::background::watch::{ResetReason, Start, WatchItem, stream};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ErrorBody, Result};
use crate::http::extract::QueryParams;
use crate::http::nirvana::models::OperationOut;
use crate::http::nirvana::operations::parse_filter;

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
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id, as the stream sent it (opaque); a bare number is a seq of the store's current epoch (`0`: from the oldest retained); empty means from now",
         pattern = "^([0-9a-z]{1,32}-)?[0-9]{0,19}$"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
         description = "A stream of Server-Sent Events that does not end by itself:\n\n\
- `event: operation`, `id:` the event id (opaque: the store's epoch and the event seq), `data:` the operation JSON exactly as `GET` returned it at that version (schema `OperationOut`), one per matching change in commit order;\n\
- `event: reset`, `id:` the newest event's id, `data:` `{\"code\": \"reset\", \"message\": …}` (schema `WatchReset`): the history after Last-Event-ID is not all retained, Last-Event-ID is ahead of this server's newest event, or it is from before the store was restored or copied (another epoch); re-list, then keep reading;\n\
- `: keep-alive` comments every 15 s.\n\n\
The stream ends on server shutdown or when the client falls more than 8,192 changes behind; resume with `Last-Event-ID`."),
        (status = 400, body = ErrorBody, description = "A parameter broke its rule, or Last-Event-ID is not an event id"),
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
    let start = start(&headers, state.store.epoch())?;
    let items = stream(
        state.store.clone(),
        filter,
        start,
        state.live.shutdown_signal(),
        &state.metrics,
    );
    let epoch: std::sync::Arc<str> = state.store.epoch().into();
    let events = items.map(move |item| Ok(render(&epoch, item)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

/// Where the stream starts, from `Last-Event-ID` (absent or empty: from now).
fn start(headers: &HeaderMap, epoch: &str) -> Result<Start> {
    let Some(raw) = headers.get("last-event-id") else {
        return Ok(Start::Now);
    };
    let rule = || ValidationError::new("Last-Event-ID", "must be an event id from this stream");
    let s = raw.to_str().map_err(|_| rule())?.trim();
    if s.is_empty() {
        return Ok(Start::Now);
    }
    let (id_epoch, seq) = match s.rsplit_once('-') {
        Some((e, seq)) => (Some(e), seq),
        None => (None, s),
    };
    let seq: u64 = seq.parse().map_err(|_| rule())?;
    match id_epoch {
        None => Ok(Start::After(seq)),
        Some(e) if e == epoch => Ok(Start::After(seq)),
        Some(e)
            if (1..=32).contains(&e.len())
                && e.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) =>
        {
            Ok(Start::OtherEpoch)
        }
        Some(_) => Err(rule().into()),
    }
}

/// An event id: the epoch and the seq (clients treat it as opaque).
pub fn event_id(epoch: &str, seq: u64) -> String {
    format!("{epoch}-{seq}")
}

fn render(epoch: &str, item: WatchItem) -> Event {
    match item {
        WatchItem::Change(change) => {
            let op = OperationOut::from((*change.operation).clone());
            Event::default()
                .event("operation")
                .id(event_id(epoch, change.event_seq))
                .json_data(op)
                .unwrap_or_else(|e| cannot_render(&e))
        }
        WatchItem::Reset { head, reason } => Event::default()
            .event("reset")
            .id(event_id(epoch, head))
            .json_data(ResetData {
                code: "reset",
                message: format!(
                    "{}; list the operations again, then keep reading: this stream continues \
                     after event {}",
                    match reason {
                        ResetReason::Ahead => format!(
                            "your Last-Event-ID is ahead of this server's newest event ({head}): \
                             it is not from this stream's history"
                        ),
                        ResetReason::Expired =>
                            "the changes after your Last-Event-ID are no longer all retained"
                                .to_owned(),
                        ResetReason::OtherEpoch =>
                            "your Last-Event-ID is from before this store was restored or \
                             copied (another epoch): its changes may differ from this store's"
                                .to_owned(),
                    },
                    event_id(epoch, head)
                ),
            })
            .unwrap_or_else(|e| cannot_render(&e)),
    }
}

fn cannot_render(e: &axum::Error) -> Event {
    tracing::error!(error = %e, "cannot render a watch event");
    Event::default().comment("an event could not be rendered")
}
