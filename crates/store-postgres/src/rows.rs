//! Conversion between rows of `operations`/`events` and domain types. Everything read
//! back is checked: a value this build cannot interpret is an error, never a guess.

use std::sync::LazyLock;
use std::time::Duration;

use opsd_domain::lease::HeldLease;
use opsd_domain::{Event, Operation, TraceContext};
use opsd_store::sql::codes::Coded;
use opsd_store::{Result, StoreError, history};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

pub use opsd_store::sql::columns::{OPERATION_COLUMN_COUNT, columns_of};

/// The columns of `operations` as SELECT text.
pub static OPERATION_COLUMNS: LazyLock<String> = LazyLock::new(|| columns_of("operations"));

/// The lease columns, read after [`OPERATION_COLUMNS`].
pub const LEASE_COLUMNS: &str =
    "lease_token_hash, lease_worker, lease_expires_at, lease_duration_ms";

fn bad(col: usize, msg: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("column {col}: {msg}"))
}

pub(crate) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    col: usize,
) -> Result<T> {
    row.try_get(col).map_err(|e| bad(col, e))
}

/// Opens a transaction whose statements run on the plan PostgreSQL keeps for each
/// prepared statement, instead of one made again for each call's parameters. The
/// writer's and the pump's statements run hundreds of times a second with parameters
/// that never change the best plan (arrays of a batch's rows, seqs just past the
/// feed's position), yet PostgreSQL keeps making custom plans while they look cheaper
/// than the kept one, which for these they always do: with two replicas the pump's
/// catch-up (a union over every operation column) was planned on every call, about
/// 580 µs against 110 µs to run it, two fifths of the time the database spent on
/// opsd's statements (docs/bench/README.md, "Replicas"). Reads that answer requests
/// keep the default: a list's filters do change its best plan.
pub const BEGIN_GENERIC: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

/// The database server's clock in microseconds since the epoch, as SQL: the one clock
/// every process on the database stamps with.
pub const DB_NOW_MICROS: &str = "floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

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

/// A kind, type or status from its stored code.
pub fn code_at<T: Coded>(row: &Row, col: usize) -> Result<T> {
    let code: i16 = get(row, col)?;
    T::from_code(i64::from(code)).ok_or_else(|| bad(col, format!("unknown code {code}")))
}

fn json_at<T: serde::de::DeserializeOwned>(row: &Row, col: usize) -> Result<T> {
    let s: &str = get(row, col)?;
    serde_json::from_str(s).map_err(|e| bad(col, e))
}

pub(crate) fn u64_at(row: &Row, col: usize) -> Result<u64> {
    u64::try_from(get::<i64>(row, col)?).map_err(|_| bad(col, "negative value"))
}

fn small<T: TryFrom<i16>>(row: &Row, col: usize) -> Result<Option<T>> {
    get::<Option<i16>>(row, col)?
        .map(|v| T::try_from(v).map_err(|_| bad(col, "value out of range")))
        .transpose()
}

/// An id read back from a row.
pub fn uuid_at(row: &Row, col: usize) -> Result<Uuid> {
    get(row, col)
}

/// Reads one operation from a row selected with [`OPERATION_COLUMNS`].
pub fn operation(row: &Row) -> Result<Operation> {
    Ok(Operation {
        seq: u64_at(row, 0)?,
        id: uuid_at(row, 1)?,
        project_id: get(row, 2)?,
        kind: code_at(row, 3)?,
        op_type: code_at(row, 4)?,
        resource_id: get(row, 5)?,
        status: code_at(row, 6)?,
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
        trace_context: trace_context_at(row, 26)?,
    })
}

/// The trace context stored in columns `col` (traceparent bytes) and `col + 1`.
fn trace_context_at(row: &Row, col: usize) -> Result<Option<TraceContext>> {
    let Some(parent) = get::<Option<&[u8]>>(row, col)? else {
        return Ok(None);
    };
    let state: Option<String> = get(row, col + 1)?;
    TraceContext::from_stored(parent, state)
        .map(Some)
        .ok_or_else(|| bad(col, "a stored traceparent is 25 bytes"))
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
        status: code_at(row, 2)?,
        progress: small(row, 3)?.ok_or_else(|| bad(3, "missing progress"))?,
        status_message: get(row, 4)?,
        at: time_at(row, 5)?,
    })
}

/// The event columns [`operation_at_event`] reads after the operation's and the event's
/// seq: what a change can touch, in the order a copy between stores carries them (after
/// the project).
const VERSION_COLUMNS: &[&str] = opsd_store::copy::EVENT_COLUMNS.split_at(1).1;

/// [`VERSION_COLUMNS`] of a stored event, for a query of `events e JOIN operations o`.
pub static EVENT_VERSION_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    VERSION_COLUMNS
        .iter()
        .map(|c| format!("e.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
});

/// [`VERSION_COLUMNS`] of an operation's creation, which its row `o` stands for when it
/// has no stored creation event (`NOT o.creation_stored`, migration 0021).
pub static CREATION_VERSION_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    VERSION_COLUMNS
        .iter()
        .map(|c| creation_column(c))
        .collect::<Vec<_>>()
        .join(", ")
});

/// What the event column `column` holds for an operation's creation, from its row `o`:
/// every operation is created at version 1, pending, with progress 0, updated when
/// created, and nothing else set (`NewOperation::into_operation`; the store-suite's
/// history tests compare it with what each create answered). Typed, so that it unites
/// with a stored event's column.
pub fn creation_column(column: &str) -> String {
    match column {
        "seq" | "op_seq" => "o.seq".into(),
        "project" => "o.project".into(),
        "version" => "1::bigint".into(),
        "status" => format!("{}::smallint", code(opsd_domain::Status::Pending)),
        "progress" => "0::smallint".into(),
        "at" => "o.created_at".into(),
        "cancel_requested" => "false".into(),
        "status_message" | "http_error_message" => "NULL::text COLLATE \"C\"".into(),
        "error" | "warnings" => "NULL::text".into(),
        "started_at" | "ended_at" => "NULL::bigint".into(),
        "http_error_status_code" => "NULL::smallint".into(),
        other => format!("NULL /* unknown event column {other} */"),
    }
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
        status: code_at(row, c + 1)?,
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

/// The stored code of a kind, type or status (`smallint`; codes are small).
pub fn code<T: Coded>(value: T) -> i16 {
    i16::try_from(value.code()).unwrap_or(i16::MAX)
}

/// A u64 as PostgreSQL's BIGINT.
pub fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_creation_has_a_value_for_every_event_column() {
        assert_eq!(opsd_store::copy::EVENT_COLUMNS[0], "project");
        for column in opsd_store::copy::EVENT_COLUMNS {
            assert!(!creation_column(column).contains("unknown"), "{column}");
        }
        assert!(!CREATION_VERSION_COLUMNS.contains("unknown"));
    }
}
