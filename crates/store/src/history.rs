//! How every backend keeps an operation's history compactly (ARCHITECTURE.md, "History
//! encoding").
//!
//! A change (`Patch`, claim, heartbeat, cancel, expiry) can only touch some fields of an
//! operation: status, progress, messages, error, warnings, times, version, the cancel
//! flag. Everything else (id, project, kind, type, resource, details, description,
//! user, request id, region, zone, target link, created_at, seq) is fixed when the
//! operation is created, and the operations row keeps it for as long as the
//! operation's events exist (retention deletes both together). So an event stores only
//! its [`Version`], and the operation as it stood at that event is the operations row
//! with the event's [`Version`] laid over it: one row lookup per event, no chain of
//! deltas to walk, and the same value that was written, field for field.
//!
//! [`Version::of`] and [`Version::on`] name every field of `Operation` without `..`,
//! so a field added to `Operation` does not compile until someone decides here whether
//! a change can touch it.

use opsd_domain::{Operation, OperationError, Status, Warning};
use time::OffsetDateTime;

/// The part of an operation that a change can touch: what each event keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub version: u64,
    pub status: Status,
    pub progress: u8,
    pub status_message: Option<String>,
    /// The event's `at`.
    pub updated_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
    pub error: Option<OperationError>,
    pub warnings: Vec<Warning>,
    pub http_error_status_code: Option<u16>,
    pub http_error_message: Option<String>,
    pub cancel_requested: bool,
}

impl Version {
    /// The changeable part of `op`.
    pub fn of(op: &Operation) -> Version {
        let Operation {
            // Fixed at creation: kept by the operations row.
            id: _,
            seq: _,
            project_id: _,
            kind: _,
            op_type: _,
            resource_id: _,
            details: _,
            description: _,
            user: _,
            request_id: _,
            region: _,
            zone: _,
            target_link: _,
            created_at: _,
            trace_context: _,
            // Changeable: kept by every event.
            status,
            progress,
            status_message,
            error,
            warnings,
            http_error_status_code,
            http_error_message,
            started_at,
            ended_at,
            updated_at,
            version,
            cancel_requested,
        } = op.clone();
        Version {
            version,
            status,
            progress,
            status_message,
            updated_at,
            started_at,
            ended_at,
            error,
            warnings,
            http_error_status_code,
            http_error_message,
            cancel_requested,
        }
    }

    /// The operation as it stood at this version: `base` (any version of the same
    /// operation, in practice its current row) with this version's fields.
    pub fn on(self, base: &Operation) -> Operation {
        let Operation {
            id,
            seq,
            project_id,
            kind,
            op_type,
            resource_id,
            details,
            description,
            user,
            request_id,
            region,
            zone,
            target_link,
            created_at,
            trace_context,
            status: _,
            progress: _,
            status_message: _,
            error: _,
            warnings: _,
            http_error_status_code: _,
            http_error_message: _,
            started_at: _,
            ended_at: _,
            updated_at: _,
            version: _,
            cancel_requested: _,
        } = base.clone();
        Operation {
            id,
            seq,
            project_id,
            kind,
            op_type,
            resource_id,
            details,
            description,
            user,
            request_id,
            region,
            zone,
            target_link,
            created_at,
            trace_context,
            status: self.status,
            progress: self.progress,
            status_message: self.status_message,
            error: self.error,
            warnings: self.warnings,
            http_error_status_code: self.http_error_status_code,
            http_error_message: self.http_error_message,
            started_at: self.started_at,
            ended_at: self.ended_at,
            updated_at: self.updated_at,
            version: self.version,
            cancel_requested: self.cancel_requested,
        }
    }
}

/// The `error` column of an event: its JSON, NULL when there is none.
pub fn error_column(error: Option<&OperationError>) -> Option<String> {
    // Plain data with string keys: serialization cannot fail.
    error.map(|e| serde_json::to_string(e).unwrap_or_default())
}

/// The `warnings` column of an event: NULL when there are none (most events), else the
/// JSON array.
pub fn warnings_column(warnings: &[Warning]) -> Option<String> {
    (!warnings.is_empty()).then(|| serde_json::to_string(warnings).unwrap_or_default())
}

/// Reads an `error` column back.
pub fn parse_error(column: Option<&str>) -> Result<Option<OperationError>, String> {
    column
        .map(|s| serde_json::from_str(s).map_err(|e| format!("event error: {e}")))
        .transpose()
}

/// Reads a `warnings` column back (NULL is none).
pub fn parse_warnings(column: Option<&str>) -> Result<Vec<Warning>, String> {
    column.map_or(Ok(Vec::new()), |s| {
        serde_json::from_str(s).map_err(|e| format!("event warnings: {e}"))
    })
}

/// The changeable part of a snapshot written by opsd before this encoding (the
/// canonical serde JSON of the whole operation), for the migration that converts them.
pub fn from_snapshot(snapshot: &str) -> Result<Version, String> {
    serde_json::from_str::<Operation>(snapshot)
        .map(|op| Version::of(&op))
        .map_err(|e| format!("event snapshot: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsd_domain::{Details, ErrorItem, Kind, NewOperation, OpType, WarningData};
    use uuid::Uuid;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).expect("time")
    }

    fn base() -> Operation {
        NewOperation {
            project_id: "p".into(),
            kind: Kind::Vm,
            op_type: OpType::Create,
            resource_id: "vm-1".into(),
            details: Details::default(),
            description: Some("d".into()),
            request_id: Some("r".into()),
            user: Some("u".into()),
            region: Some("reg".into()),
            zone: Some("z".into()),
            target_link: Some("t".into()),
            trace_context: None,
        }
        .into_operation(Uuid::now_v7(), at(0))
    }

    /// A later version laid over the first version's row gives the later version back
    /// exactly, and its columns round-trip.
    #[test]
    fn a_version_over_any_other_version_is_that_version() {
        let first = base();
        let mut later = first.clone();
        later.status = Status::Failed;
        later.progress = 40;
        later.status_message = Some("m".into());
        later.error = Some(OperationError {
            errors: vec![ErrorItem {
                code: "E".into(),
                message: "boom".into(),
                location: Some("f".into()),
            }],
        });
        later.warnings = vec![Warning {
            code: "W".into(),
            message: "w".into(),
            data: vec![WarningData {
                key: "k".into(),
                value: "v".into(),
            }],
        }];
        later.http_error_status_code = Some(409);
        later.http_error_message = Some("conflict".into());
        later.started_at = Some(at(1));
        later.ended_at = Some(at(2));
        later.updated_at = at(2);
        later.version = 5;
        later.cancel_requested = true;
        assert_eq!(Version::of(&later).on(&first), later);
        assert_eq!(Version::of(&first).on(&later), first);

        let error = error_column(later.error.as_ref());
        let warnings = warnings_column(&later.warnings);
        assert_eq!(parse_error(error.as_deref()).expect("error"), later.error);
        assert_eq!(
            parse_warnings(warnings.as_deref()).expect("warnings"),
            later.warnings
        );
        assert_eq!(warnings_column(&[]), None);
        assert_eq!(parse_warnings(None).expect("none"), Vec::<Warning>::new());

        let snapshot = serde_json::to_string(&later).expect("json");
        assert_eq!(
            from_snapshot(&snapshot).expect("snapshot"),
            Version::of(&later)
        );
    }
}
