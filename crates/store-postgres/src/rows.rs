//! Conversion between rows of `operations`/`events` and domain types. Everything read
//! back is checked: a value this build cannot interpret is an error, never a guess.

use std::time::Duration;

use opsd_domain::lease::HeldLease;
use opsd_domain::{Event, Kind, OpType, Operation, Status, micros};
use opsd_store::{Result, StoreError, history};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// The columns every operation SELECT reads, in [`operation`] order.
pub const OPERATION_COLUMNS: &str = "seq, id, project_id, kind, type, resource_id, status, \
     progress, status_message, description, details, error, warnings, http_error_status_code, \
     http_error_message, \"user\", request_id, region, zone, target_link, created_at, \
     started_at, ended_at, updated_at, version, cancel_requested";

/// How many columns [`OPERATION_COLUMNS`] has (the lease columns follow them).
const OPERATION_COLUMN_COUNT: usize = 26;

/// The columns an INSERT writes: [`OPERATION_COLUMNS`] but `seq` (the database assigns
/// it), then `request_hash`.
pub const INSERT_COLUMNS: &str = "id, project_id, kind, type, resource_id, status, progress, \
     status_message, description, details, error, warnings, http_error_status_code, \
     http_error_message, \"user\", request_id, region, zone, target_link, created_at, \
     started_at, ended_at, updated_at, version, cancel_requested, request_hash";

/// The lease columns, read after [`OPERATION_COLUMNS`].
pub const LEASE_COLUMNS: &str =
    "lease_token_hash, lease_worker, lease_expires_at, lease_duration_ms";

fn bad(col: usize, msg: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("column {col}: {msg}"))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, col: usize) -> Result<T> {
    row.try_get(col).map_err(|e| bad(col, e))
}

/// Microseconds since the epoch back to a time.
pub fn from_micros(m: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000).ok()
}

fn time_at(row: &Row, col: usize) -> Result<OffsetDateTime> {
    from_micros(get(row, col)?).ok_or_else(|| bad(col, "time out of range"))
}

fn opt_time_at(row: &Row, col: usize) -> Result<Option<OffsetDateTime>> {
    get::<Option<i64>>(row, col)?
        .map(|m| from_micros(m).ok_or_else(|| bad(col, "time out of range")))
        .transpose()
}

fn enum_at<T>(row: &Row, col: usize, parse: fn(&str) -> Option<T>) -> Result<T> {
    let s: &str = get(row, col)?;
    parse(s).ok_or_else(|| bad(col, format!("unknown value '{s}'")))
}

fn json_at<T: serde::de::DeserializeOwned>(row: &Row, col: usize) -> Result<T> {
    let s: &str = get(row, col)?;
    serde_json::from_str(s).map_err(|e| bad(col, e))
}

fn u64_at(row: &Row, col: usize) -> Result<u64> {
    u64::try_from(get::<i64>(row, col)?).map_err(|_| bad(col, "negative value"))
}

fn small<T: TryFrom<i64>>(row: &Row, col: usize) -> Result<Option<T>> {
    get::<Option<i64>>(row, col)?
        .map(|v| T::try_from(v).map_err(|_| bad(col, "value out of range")))
        .transpose()
}

/// An id read back from a row.
pub fn uuid_at(row: &Row, col: usize) -> Result<Uuid> {
    let s: &str = get(row, col)?;
    Uuid::parse_str(s).map_err(|e| bad(col, e))
}

/// Reads one operation from a row selected with [`OPERATION_COLUMNS`].
pub fn operation(row: &Row) -> Result<Operation> {
    Ok(Operation {
        seq: u64_at(row, 0)?,
        id: uuid_at(row, 1)?,
        project_id: get(row, 2)?,
        kind: enum_at(row, 3, Kind::parse)?,
        op_type: enum_at(row, 4, OpType::parse)?,
        resource_id: get(row, 5)?,
        status: enum_at(row, 6, Status::parse)?,
        progress: small(row, 7)?.ok_or_else(|| bad(7, "missing progress"))?,
        status_message: get(row, 8)?,
        description: get(row, 9)?,
        details: json_at(row, 10)?,
        error: get::<Option<&str>>(row, 11)?
            .map(|e| serde_json::from_str(e).map_err(|err| bad(11, err)))
            .transpose()?,
        warnings: json_at(row, 12)?,
        http_error_status_code: small(row, 13)?,
        http_error_message: get(row, 14)?,
        user: get(row, 15)?,
        request_id: get(row, 16)?,
        region: get(row, 17)?,
        zone: get(row, 18)?,
        target_link: get(row, 19)?,
        created_at: time_at(row, 20)?,
        started_at: opt_time_at(row, 21)?,
        ended_at: opt_time_at(row, 22)?,
        updated_at: time_at(row, 23)?,
        version: u64_at(row, 24)?,
        cancel_requested: get(row, 25)?,
    })
}

/// Reads the lease that follows the operation columns, if the operation holds one.
pub fn lease(row: &Row) -> Result<Option<HeldLease>> {
    let at = OPERATION_COLUMN_COUNT;
    let hash: Option<String> = get(row, at)?;
    let worker: Option<String> = get(row, at + 1)?;
    let expires: Option<i64> = get(row, at + 2)?;
    let duration: Option<i64> = get(row, at + 3)?;
    let (Some(token_hash), Some(worker), Some(expires), Some(duration)) =
        (hash, worker, expires, duration)
    else {
        return Ok(None);
    };
    Ok(Some(HeldLease {
        token_hash,
        worker,
        expires_at: from_micros(expires).ok_or_else(|| bad(at + 2, "time out of range"))?,
        duration: Duration::from_millis(duration.unsigned_abs()),
    }))
}

/// Reads one event of operation `operation_id` from
/// `SELECT seq, version, status, progress, status_message, at`.
pub fn event(row: &Row, operation_id: Uuid) -> Result<Event> {
    Ok(Event {
        seq: u64_at(row, 0)?,
        operation_id,
        version: u64_at(row, 1)?,
        status: enum_at(row, 2, Status::parse)?,
        progress: small(row, 3)?.ok_or_else(|| bad(3, "missing progress"))?,
        status_message: get(row, 4)?,
        at: time_at(row, 5)?,
    })
}

/// The event columns [`operation_at_event`] reads after the operation's and the event's
/// seq, for a query of `events e JOIN operations o`.
pub const EVENT_VERSION_COLUMNS: &str = "e.version, e.status, e.progress, e.status_message, \
     e.at, e.started_at, e.ended_at, e.error, e.warnings, e.http_error_status_code, \
     e.http_error_message, e.cancel_requested";

/// [`OPERATION_COLUMNS`], each qualified with a table alias (for joins).
pub fn columns_of(alias: &str) -> String {
    OPERATION_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The event's seq and the operation as it stood at that event, from a row of
/// `SELECT` [`OPERATION_COLUMNS`] (the operations row, current version), `e.seq`, then
/// [`EVENT_VERSION_COLUMNS`] — `opsd_store::history`.
pub fn operation_at_event(row: &Row) -> Result<(u64, Operation)> {
    let base = operation(row)?;
    let seq = u64_at(row, OPERATION_COLUMN_COUNT)?;
    let c = OPERATION_COLUMN_COUNT + 1;
    let version = history::Version {
        version: u64_at(row, c)?,
        status: enum_at(row, c + 1, Status::parse)?,
        progress: small(row, c + 2)?.ok_or_else(|| bad(c + 2, "missing progress"))?,
        status_message: get(row, c + 3)?,
        updated_at: time_at(row, c + 4)?,
        started_at: opt_time_at(row, c + 5)?,
        ended_at: opt_time_at(row, c + 6)?,
        error: history::parse_error(get(row, c + 7)?).map_err(|e| bad(c + 7, e))?,
        warnings: history::parse_warnings(get(row, c + 8)?).map_err(|e| bad(c + 8, e))?,
        http_error_status_code: small(row, c + 9)?,
        http_error_message: get(row, c + 10)?,
        cancel_requested: get(row, c + 11)?,
    };
    Ok((seq, version.on(&base)))
}

/// Serializes plain domain data (string keys only, so it cannot fail).
pub fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A u64 as PostgreSQL's BIGINT.
pub fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The values of an operation row, in [`OPERATION_COLUMNS`] order minus `seq` (which the
/// database assigns), followed by `request_hash`.
pub struct OperationValues {
    id: String,
    kind: &'static str,
    op_type: &'static str,
    status: &'static str,
    progress: i64,
    details: String,
    error: Option<String>,
    warnings: String,
    http_error_status_code: Option<i64>,
    created_at: i64,
    started_at: Option<i64>,
    ended_at: Option<i64>,
    updated_at: i64,
    version: i64,
}

impl OperationValues {
    /// The column values of `op`.
    pub fn of(op: &Operation) -> Self {
        Self {
            id: op.id.to_string(),
            kind: op.kind.as_str(),
            op_type: op.op_type.as_str(),
            status: op.status.as_str(),
            progress: i64::from(op.progress),
            details: json(&op.details),
            error: op.error.as_ref().map(json),
            warnings: json(&op.warnings),
            http_error_status_code: op.http_error_status_code.map(i64::from),
            created_at: micros(op.created_at),
            started_at: op.started_at.map(micros),
            ended_at: op.ended_at.map(micros),
            updated_at: micros(op.updated_at),
            version: big(op.version),
        }
    }

    /// Parameters for `INSERT` of [`INSERT_COLUMNS`] (`$1…$26`).
    pub fn insert_params<'a>(
        &'a self,
        op: &'a Operation,
        request_hash: &'a Option<Vec<u8>>,
    ) -> [&'a (dyn ToSql + Sync); 26] {
        [
            &self.id,
            &op.project_id,
            &self.kind,
            &self.op_type,
            &op.resource_id,
            &self.status,
            &self.progress,
            &op.status_message,
            &op.description,
            &self.details,
            &self.error,
            &self.warnings,
            &self.http_error_status_code,
            &op.http_error_message,
            &op.user,
            &op.request_id,
            &op.region,
            &op.zone,
            &op.target_link,
            &self.created_at,
            &self.started_at,
            &self.ended_at,
            &self.updated_at,
            &self.version,
            &op.cancel_requested,
            request_hash,
        ]
    }

    /// Parameters for `UPDATE` of what a change can alter (`$1…$13`).
    pub fn update_params<'a>(&'a self, op: &'a Operation) -> [&'a (dyn ToSql + Sync); 13] {
        [
            &self.status,
            &self.progress,
            &op.status_message,
            &self.error,
            &self.warnings,
            &self.http_error_status_code,
            &op.http_error_message,
            &self.started_at,
            &self.ended_at,
            &self.updated_at,
            &self.version,
            &self.id,
            &op.cancel_requested,
        ]
    }
}
