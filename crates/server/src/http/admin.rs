//! Administration of the running server (admin keys only): a backup of the store,
//! streamed to the caller, and the read-only switch that stops writes while the store
//! is copied elsewhere.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ErrorBody, Result};
use super::extract::{NoQuery, ValidJson};
use super::refusals::{FieldBrokeItsRule, NotAnAdmin, QueryParameterSent};

/// Bytes read from the snapshot file per chunk of the response.
const CHUNK: usize = 256 * 1024;

/// Back up the store (SQLite): a consistent snapshot, taken while the server serves.
#[utoipa::path(
    post, path = "/v1/admin/backup", tag = "admin", operation_id = "backupStore",
    responses(
        (status = 200, content_type = "application/vnd.sqlite3", body = Vec<u8>,
         description = "The snapshot: one SQLite file, verified (`integrity_check`) before it is sent. \
Restore it with `opsd restore --from FILE`. The headers summarise it; compare `x-opsd-backup-sha256` with the file received.",
         headers(
            ("x-opsd-backup-sha256" = String, description = "SHA-256 of the file, lowercase hex"),
            ("x-opsd-backup-operations" = u64, description = "Operations in the snapshot"),
            ("x-opsd-backup-events" = u64, description = "History events in the snapshot"),
            ("x-opsd-backup-keys" = u64, description = "API keys in the snapshot"),
            ("x-opsd-backup-schema-version" = i64, description = "The snapshot's schema version"),
         )),
        QueryParameterSent,
        NotAnAdmin,
        (status = 409, body = ErrorBody, description = "`not_supported_for_backend`: the store is PostgreSQL, which is backed up with its own tools (pg_dump)"),
    )
)]
pub async fn backup(
    State(state): State<AppState>,
    Admin(caller): Admin,
    _: NoQuery,
) -> Result<Response> {
    let started = std::time::Instant::now();
    let taken = state.store.backup().await?;
    let file = tokio::fs::File::open(&taken.path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot open the backup file: {e}")))?;
    let s = taken.summary.clone();
    tracing::info!(by = %caller.0.name, operations = s.operations, events = s.events,
        bytes = s.bytes, seconds = started.elapsed().as_secs_f64(), "backup taken");
    // The file goes with the body: removed once the body is sent or dropped.
    let body = stream::unfold((file, taken), |(mut file, taken)| async move {
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), (file, taken)))
            }
            Err(e) => Some((Err(e), (file, taken))),
        }
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.sqlite3"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(s.bytes));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"opsd-backup.db\""),
    );
    for (name, value) in [
        ("x-opsd-backup-sha256", s.sha256.clone()),
        ("x-opsd-backup-operations", s.operations.to_string()),
        ("x-opsd-backup-events", s.events.to_string()),
        ("x-opsd-backup-keys", s.keys.to_string()),
        ("x-opsd-backup-schema-version", s.schema_version.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    Ok(response)
}

/// Whether the server refuses writes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadOnly {
    /// `true`: every write answers 503 `read_only` until this is set back to `false`.
    pub read_only: bool,
}

/// Whether the server is read-only.
#[utoipa::path(
    get, path = "/v1/admin/read_only", tag = "admin", operation_id = "getReadOnly",
    responses(
        (status = 200, body = ReadOnly, description = "Whether writes are refused"),
        QueryParameterSent,
        NotAnAdmin,
    )
)]
pub async fn read_only(State(state): State<AppState>, _: Admin, _: NoQuery) -> Json<ReadOnly> {
    Json(ReadOnly {
        read_only: state.read_only.load(Ordering::SeqCst),
    })
}

/// Make the server read-only (for the last pass of a copy to another store), or writable
/// again. Not kept across restarts: `opsd serve --read-only` starts read-only.
#[utoipa::path(
    put, path = "/v1/admin/read_only", tag = "admin", operation_id = "setReadOnly",
    request_body = ReadOnly,
    responses(
        (status = 200, body = ReadOnly, description = "The new setting, in force for every request that starts from now"),
        FieldBrokeItsRule,
        NotAnAdmin,
    )
)]
pub async fn set_read_only(
    State(state): State<AppState>,
    Admin(caller): Admin,
    _: NoQuery,
    ValidJson(body): ValidJson<ReadOnly>,
) -> Json<ReadOnly> {
    state.read_only.store(body.read_only, Ordering::SeqCst);
    tracing::warn!(read_only = body.read_only, by = %caller.0.name, "read-only switched");
    Json(body)
}

/// Whether a request would write, so a read-only server refuses it: every method but
/// GET and HEAD, except the admin endpoints (the switch itself, backups), console
/// sign-in and sign-out (sessions are not operations) and long-polls sent with POST.
pub fn writes(method: &axum::http::Method, path: &str) -> bool {
    !(method == axum::http::Method::GET
        || method == axum::http::Method::HEAD
        || method == axum::http::Method::OPTIONS
        || path.starts_with("/v1/admin/")
        || path.starts_with("/console/")
        || path.ends_with("/wait"))
}

/// Routes under `/v1/admin`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/backup", post(backup))
        .route("/v1/admin/read_only", get(read_only).put(set_read_only))
}
