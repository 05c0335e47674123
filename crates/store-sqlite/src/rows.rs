//! Conversion between rows of `operations`/`events` and domain types. Everything read
//! back is checked: a value this build cannot interpret is an error, never a guess.

use std::sync::LazyLock;

use opsd_domain::{Event, Operation, TraceContext, micros};
use opsd_store::history;
use opsd_store::sql::codes::Coded;
use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;
use uuid::Uuid;

pub use opsd_store::sql::columns::{OPERATION_COLUMN_COUNT, columns_of};

/// The columns of `operations` as SELECT text.
pub static OPERATION_COLUMNS: LazyLock<String> = LazyLock::new(|| columns_of("operations"));

/// One operation by id, as [`operation_from_row`] reads it.
pub static SELECT_BY_ID: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM operations WHERE id = ?1",
        OPERATION_COLUMNS.as_str()
    )
});

/// The project's number for a write: made on its first operation.
pub fn project_number(conn: &rusqlite::Connection, name: &str) -> rusqlite::Result<i64> {
    let known = conn
        .prepare_cached("SELECT n FROM projects WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    match known {
        Some(n) => Ok(n),
        None => {
            conn.prepare_cached("INSERT INTO projects (name) VALUES (?1)")?
                .execute([name])?;
            Ok(conn.last_insert_rowid())
        }
    }
}

/// The bytes an id is stored as.
pub fn id_bytes(id: Uuid) -> [u8; 16] {
    id.into_bytes()
}

fn conversion(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, msg.into())
}

fn time_at(row: &Row, col: usize) -> rusqlite::Result<OffsetDateTime> {
    from_micros(row.get(col)?).ok_or_else(|| conversion(col, "time out of range".into()))
}

fn opt_time_at(row: &Row, col: usize) -> rusqlite::Result<Option<OffsetDateTime>> {
    row.get::<_, Option<i64>>(col)?
        .map(|m| from_micros(m).ok_or_else(|| conversion(col, "time out of range".into())))
        .transpose()
}

/// Microseconds since the epoch back to a time.
pub fn from_micros(m: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000).ok()
}

/// A kind, type or status stored as its code.
pub fn enum_at<T: Coded>(row: &Row, col: usize) -> rusqlite::Result<T> {
    let code: i64 = row.get(col)?;
    T::from_code(code).ok_or_else(|| conversion(col, format!("unknown code {code}")))
}

fn json_at<T: serde::de::DeserializeOwned>(row: &Row, col: usize) -> rusqlite::Result<T> {
    let s: String = row.get(col)?;
    serde_json::from_str(&s).map_err(|e| conversion(col, e.to_string()))
}

fn u64_at(row: &Row, col: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(col)?;
    u64::try_from(v).map_err(|_| conversion(col, "negative value".into()))
}

/// An id stored as its 16 bytes.
pub fn uuid_at(row: &Row, col: usize) -> rusqlite::Result<Uuid> {
    let b: Vec<u8> = row.get(col)?;
    Uuid::from_slice(&b).map_err(|e| conversion(col, e.to_string()))
}

/// Reads one operation from a row selected with [`OPERATION_COLUMNS`].
pub fn operation_from_row(row: &Row) -> rusqlite::Result<Operation> {
    let error: Option<String> = row.get(11)?;
    Ok(Operation {
        seq: u64_at(row, 0)?,
        id: uuid_at(row, 1)?,
        project_id: row.get(2)?,
        kind: enum_at(row, 3)?,
        op_type: enum_at(row, 4)?,
        resource_id: row.get(5)?,
        status: enum_at(row, 6)?,
        progress: row.get(7)?,
        status_message: row.get(8)?,
        description: row.get(9)?,
        details: json_at(row, 10)?,
        error: error
            .map(|e| serde_json::from_str(&e).map_err(|err| conversion(11, err.to_string())))
            .transpose()?,
        warnings: json_at(row, 12)?,
        http_error_status_code: row.get(13)?,
        http_error_message: row.get(14)?,
        user: row.get(15)?,
        request_id: row.get(16)?,
        region: row.get(17)?,
        zone: row.get(18)?,
        target_link: row.get(19)?,
        created_at: time_at(row, 20)?,
        started_at: opt_time_at(row, 21)?,
        ended_at: opt_time_at(row, 22)?,
        updated_at: time_at(row, 23)?,
        version: u64_at(row, 24)?,
        cancel_requested: row.get(25)?,
        trace_context: trace_context_at(row, 26)?,
    })
}

/// The trace context stored in columns `col` (traceparent bytes) and `col + 1`.
fn trace_context_at(row: &Row, col: usize) -> rusqlite::Result<Option<TraceContext>> {
    let Some(parent) = row.get::<_, Option<Vec<u8>>>(col)? else {
        return Ok(None);
    };
    let state: Option<String> = row.get(col + 1)?;
    TraceContext::from_stored(&parent, state)
        .map(Some)
        .ok_or_else(|| conversion(col, "a stored traceparent is 25 bytes".into()))
}

/// Reads one event of operation `operation_id` from
/// `SELECT seq, version, status, progress, status_message, at`.
pub fn event_from_row(row: &Row, operation_id: Uuid) -> rusqlite::Result<Event> {
    Ok(Event {
        seq: u64_at(row, 0)?,
        operation_id,
        version: u64_at(row, 1)?,
        status: enum_at(row, 2)?,
        progress: row.get(3)?,
        status_message: row.get(4)?,
        at: time_at(row, 5)?,
    })
}

/// The operation as it stood at an event, from a row of
/// `SELECT` [`OPERATION_COLUMNS`] (the operations row, current version), the event's
/// seq, then [`EVENT_VERSION_COLUMNS`] (the event) — `opsd_store::history`.
pub fn operation_at_event(row: &Row) -> rusqlite::Result<Operation> {
    let base = operation_from_row(row)?;
    let c = OPERATION_COLUMN_COUNT + 1;
    let error: Option<String> = row.get(c + 7)?;
    let warnings: Option<String> = row.get(c + 8)?;
    let version = history::Version {
        version: u64_at(row, c)?,
        status: enum_at(row, c + 1)?,
        progress: row.get(c + 2)?,
        status_message: row.get(c + 3)?,
        updated_at: time_at(row, c + 4)?,
        started_at: opt_time_at(row, c + 5)?,
        ended_at: opt_time_at(row, c + 6)?,
        error: history::parse_error(error.as_deref()).map_err(|e| conversion(c + 7, e))?,
        warnings: history::parse_warnings(warnings.as_deref()).map_err(|e| conversion(c + 8, e))?,
        http_error_status_code: row.get(c + 9)?,
        http_error_message: row.get(c + 10)?,
        cancel_requested: row.get(c + 11)?,
    };
    Ok(version.on(&base))
}

/// The event columns [`operation_at_event`] reads after the operation's, for a query
/// of `events e JOIN operations o`.
pub const EVENT_VERSION_COLUMNS: &str = "e.version, e.status, e.progress, e.status_message, \
     e.at, e.started_at, e.ended_at, e.error, e.warnings, e.http_error_status_code, \
     e.http_error_message, e.cancel_requested";

/// Appends the event describing `op`'s current version (only what a change can touch:
/// `opsd_store::history`); returns the event's seq.
pub fn insert_event(conn: &rusqlite::Connection, op: &Operation) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "INSERT INTO events (op_seq, project, version, status, progress, status_message, \
         at, started_at, ended_at, error, warnings, http_error_status_code, http_error_message, \
         cancel_requested) VALUES (?1, (SELECT project FROM operations WHERE seq = ?1), ?2, ?3, \
         ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        to_i64(op.seq)?,
        to_i64(op.version)?,
        op.status.code(),
        op.progress,
        op.status_message,
        micros(op.updated_at),
        op.started_at.map(micros),
        op.ended_at.map(micros),
        history::error_column(op.error.as_ref()),
        history::warnings_column(&op.warnings),
        op.http_error_status_code,
        op.http_error_message,
        op.cancel_requested,
    ])?;
    u64::try_from(conn.last_insert_rowid())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn json(v: &impl serde::Serialize) -> String {
    // Domain types are plain data with string keys: serialization cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

fn to_i64(v: u64) -> rusqlite::Result<i64> {
    i64::try_from(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Inserts a new operation; returns its `seq`.
pub fn insert_operation(
    conn: &rusqlite::Connection,
    op: &Operation,
    request_hash: Option<&[u8]>,
) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "INSERT INTO operations (id, project, kind, type, resource_id, status, progress, \
         status_message, description, details, error, warnings, http_error_status_code, \
         http_error_message, user, request_id, request_hash, region, zone, target_link, \
         created_at, started_at, ended_at, updated_at, version, trace_parent, trace_state) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)",
    )?
    .execute(params![
        id_bytes(op.id),
        project_number(conn, &op.project_id)?,
        op.kind.code(),
        op.op_type.code(),
        op.resource_id,
        op.status.code(),
        op.progress,
        op.status_message,
        op.description,
        json(&op.details),
        op.error.as_ref().map(json),
        json(&op.warnings),
        op.http_error_status_code,
        op.http_error_message,
        op.user,
        op.request_id,
        request_hash,
        op.region,
        op.zone,
        op.target_link,
        micros(op.created_at),
        op.started_at.map(micros),
        op.ended_at.map(micros),
        micros(op.updated_at),
        to_i64(op.version)?,
        op.trace_context.as_ref().map(|t| t.to_stored().to_vec()),
        op.trace_context
            .as_ref()
            .and_then(|t| t.tracestate.as_deref()),
    ])?;
    u64::try_from(conn.last_insert_rowid())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Writes the mutable part of an operation back (what a PATCH can change).
pub fn update_operation(conn: &rusqlite::Connection, op: &Operation) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE operations SET status = ?1, progress = ?2, status_message = ?3, error = ?4, \
         warnings = ?5, http_error_status_code = ?6, http_error_message = ?7, started_at = ?8, \
         ended_at = ?9, updated_at = ?10, version = ?11, cancel_requested = ?13 WHERE id = ?12",
    )?
    .execute(params![
        op.status.code(),
        op.progress,
        op.status_message,
        op.error.as_ref().map(json),
        json(&op.warnings),
        op.http_error_status_code,
        op.http_error_message,
        op.started_at.map(micros),
        op.ended_at.map(micros),
        micros(op.updated_at),
        to_i64(op.version)?,
        id_bytes(op.id),
        op.cancel_requested,
    ])?;
    Ok(())
}
