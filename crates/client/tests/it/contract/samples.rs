//! SDK values with every field set, so that every property appears on the wire.

use opsd_client::{
    ApiKey, Details, ErrorItem, Event, FieldDiff, Kind, OpType, Operation, OperationError, Role,
    Status, TraceContext,
};
use opsd_domain::{DiffValue, Warning, WarningData};
use time::macros::datetime;
use uuid::Uuid;

/// An operation with every field set.
pub(super) fn operation() -> Operation {
    Operation {
        id: Uuid::nil(),
        project_id: "p".into(),
        kind: Kind::Vm,
        op_type: OpType::Update,
        resource_id: "vm-1".into(),
        status: Status::Failed,
        details: details(),
        progress: 50,
        status_message: Some("half".into()),
        description: Some("resize".into()),
        error: Some(operation_error()),
        warnings: vec![warning()],
        http_error_status_code: Some(500),
        http_error_message: Some("boom".into()),
        user: Some("someone".into()),
        request_id: Some("r-1".into()),
        region: Some("eu".into()),
        zone: Some("eu-1".into()),
        target_link: Some("https://example.com/vm-1".into()),
        created_at: datetime!(2026-01-01 0:00 UTC),
        started_at: Some(datetime!(2026-01-01 0:00:01 UTC)),
        ended_at: Some(datetime!(2026-01-01 0:00:02 UTC)),
        updated_at: datetime!(2026-01-01 0:00:02 UTC),
        version: 3,
        cancel_requested: true,
        trace_context: TraceContext::parse(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Some("vendor=value"),
        ),
    }
}

pub(super) fn details() -> Details {
    let diff = FieldDiff {
        from: DiffValue::String("small".into()),
        to: DiffValue::String("large".into()),
    };
    Details {
        changes: [("size".to_owned(), diff)].into(),
    }
}

pub(super) fn operation_error() -> OperationError {
    OperationError {
        errors: vec![ErrorItem {
            code: "QUOTA".into(),
            message: "over quota".into(),
            location: Some("size".into()),
        }],
    }
}

pub(super) fn warning() -> Warning {
    Warning {
        code: "SLOW".into(),
        message: "slow disk".into(),
        data: vec![WarningData {
            key: "disk".into(),
            value: "d-1".into(),
        }],
    }
}

pub(super) fn event() -> Event {
    Event {
        seq: 9,
        version: 3,
        status: Status::Running,
        progress: 50,
        message: Some("half".into()),
        at: datetime!(2026-01-01 0:00 UTC),
    }
}

pub(super) fn api_key() -> ApiKey {
    ApiKey {
        id: Uuid::nil(),
        name: "k".into(),
        role: Role::Producer,
        projects: vec!["p".into()],
        prefix: "opsd_abc".into(),
        created_at: datetime!(2026-01-01 0:00 UTC),
        revoked_at: Some(datetime!(2026-01-02 0:00 UTC)),
    }
}
