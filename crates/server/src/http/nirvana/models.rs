//! Wire types of the Nirvana dialect and of the producer API. Field names are the seed's
//! (`../shared/seeds/000_*.txt`): none may be renamed, dropped or retyped. opsd's extra
//! fields are optional additions that the official SDKs ignore.

use opsd_domain::{
    Details, Event, Kind, NewOperation, OpType, Operation, OperationError, Patch, Status,
    TraceContext, ValidationError, Warning,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// Operation details, as `GET /v1/operations/{id}` returns them.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationOut {
    /// Unique identifier for the Operation (UUIDv7).
    pub id: Uuid,
    /// When the Operation was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Structured details about what an operation is changing.
    pub details: Details,
    /// Kind of Operation.
    pub kind: Kind,
    /// Project ID the Operation belongs to.
    pub project_id: String,
    /// ID of the resource that the Operation is acting on.
    pub resource_id: String,
    /// Status of the Operation.
    pub status: Status,
    /// Type of Operation.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// When the Operation was updated.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Increases by one on every change; also the `ETag`.
    pub version: u64,
    /// 0–100, never decreases; 100 when done.
    pub progress: u8,
    /// Human text about the current state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Set at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Present when the operation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    /// Warnings raised while processing, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// HTTP status of the failure, for failed operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_error_status_code: Option<u16>,
    /// HTTP message of the failure, for failed operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_error_message: Option<String>,
    /// Who asked for the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The producer's idempotency key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Region of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zone of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Link to the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_link: Option<String>,
    /// When the operation first started running.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// When the operation reached done or failed.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<OffsetDateTime>,
    /// Someone asked to cancel the operation (`POST /v1/operations/{id}/cancel`); its
    /// worker should stop and fail it with the error code `CANCELLED`. Omitted when
    /// false, so an operation nobody cancelled has exactly its old fields.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub cancel_requested: bool,
    /// W3C trace context of the request that created the operation; omitted when that
    /// request carried none (and opsd was not exporting traces).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<TraceContext>,
}

impl From<Operation> for OperationOut {
    fn from(op: Operation) -> Self {
        OperationOut {
            id: op.id,
            created_at: op.created_at,
            details: op.details,
            kind: op.kind,
            project_id: op.project_id,
            resource_id: op.resource_id,
            status: op.status,
            op_type: op.op_type,
            updated_at: op.updated_at,
            version: op.version,
            progress: op.progress,
            status_message: op.status_message,
            description: op.description,
            error: op.error,
            warnings: op.warnings,
            http_error_status_code: op.http_error_status_code,
            http_error_message: op.http_error_message,
            user: op.user,
            request_id: op.request_id,
            region: op.region,
            zone: op.zone,
            target_link: op.target_link,
            started_at: op.started_at,
            ended_at: op.ended_at,
            cancel_requested: op.cancel_requested,
            trace_context: op.trace_context,
        }
    }
}

/// Cursors and count of a list page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    /// Cursor of the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Cursor of the previous page; null on the first page.
    pub previous_cursor: Option<String>,
    /// How many operations match the filters in all.
    pub total_count: u64,
}

/// One page of operations.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationList {
    /// The operations of this page.
    pub items: Vec<OperationOut>,
    /// Where the page sits in the list.
    pub pagination: Pagination,
}

/// Body of `POST /v1/operations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationIn {
    /// Project the operation belongs to.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    pub project_id: String,
    /// Kind of resource.
    pub kind: Kind,
    /// What is done to the resource.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// The resource acted on.
    #[schema(pattern = "^[A-Za-z0-9._:/-]{1,128}$")]
    pub resource_id: String,
    /// Field diffs.
    #[serde(default, deserialize_with = "opsd_domain::strict_json::opt_object")]
    pub details: Option<Details>,
    /// Free text.
    #[schema(
        max_length = 4096,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub description: Option<String>,
    /// Idempotency key: a retry with the same key and body returns the first operation.
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub request_id: Option<String>,
    /// Who asked for the change (default: the key's name).
    #[schema(
        max_length = 256,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub user: Option<String>,
    /// Region of the resource.
    #[schema(
        max_length = 256,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub region: Option<String>,
    /// Zone of the resource.
    #[schema(
        max_length = 256,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub zone: Option<String>,
    /// Link to the resource.
    #[schema(
        max_length = 2048,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub target_link: Option<String>,
}

impl OperationIn {
    /// The domain request, validated.
    pub fn into_new(self) -> Result<NewOperation, ValidationError> {
        let new = NewOperation {
            project_id: self.project_id,
            kind: self.kind,
            op_type: self.op_type,
            resource_id: self.resource_id,
            details: self.details.unwrap_or_default(),
            description: self.description,
            request_id: self.request_id,
            user: self.user,
            region: self.region,
            zone: self.zone,
            target_link: self.target_link,
            trace_context: None,
        };
        new.validate()?;
        Ok(new)
    }
}

/// Body of `PATCH /v1/operations/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationPatch {
    /// New status, as the state machine allows.
    pub status: Option<Status>,
    /// New progress, never lower than the current one.
    #[serde(default, deserialize_with = "opsd_domain::strict_json::opt_integer")]
    #[schema(minimum = 0, maximum = 100)]
    pub progress: Option<i64>,
    /// New status message.
    #[schema(
        max_length = 4096,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub status_message: Option<String>,
    /// Errors; required with `failed`, refused otherwise.
    #[serde(default, deserialize_with = "opsd_domain::strict_json::opt_object")]
    pub error: Option<OperationError>,
    /// Warnings to append.
    #[serde(default, deserialize_with = "opsd_domain::strict_json::opt_objects")]
    pub warnings: Option<Vec<Warning>>,
    /// HTTP status of the failure; only with `failed`.
    #[serde(default, deserialize_with = "opsd_domain::strict_json::opt_integer")]
    #[schema(minimum = 400, maximum = 599)]
    pub http_error_status_code: Option<i64>,
    /// HTTP message of the failure; only with `failed`.
    #[schema(
        max_length = 4096,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub http_error_message: Option<String>,
    /// Apply only if the operation is at this version (like `If-Match`).
    #[serde(default, deserialize_with = "opsd_domain::strict_json::opt_integer")]
    #[schema(minimum = 0)]
    pub expected_version: Option<u64>,
    /// The lease token from `POST /v1/operations/claim`; required while the operation is
    /// leased, refused when it is not.
    #[schema(min_length = 1, max_length = 128)]
    pub lease_token: Option<String>,
}

impl OperationPatch {
    /// The domain patch, with numeric ranges checked.
    pub fn into_patch(self) -> Result<(Patch, Option<u64>), ValidationError> {
        let progress = self
            .progress
            .map(|p| u8::try_from(p).ok().filter(|p| *p <= 100))
            .map(|p| p.ok_or_else(|| ValidationError::new("progress", "must be between 0 and 100")))
            .transpose()?;
        let http_error_status_code = self
            .http_error_status_code
            .map(|c| u16::try_from(c).ok().filter(|c| (400..=599).contains(c)))
            .map(|c| {
                c.ok_or_else(|| {
                    ValidationError::new(
                        "http_error_status_code",
                        "must be an HTTP error status between 400 and 599",
                    )
                })
            })
            .transpose()?;
        let patch = Patch {
            status: self.status,
            progress,
            status_message: self.status_message,
            error: self.error,
            warnings: self.warnings.unwrap_or_default(),
            http_error_status_code,
            http_error_message: self.http_error_message,
        };
        // Checked again by `state_machine::apply`, where the rule lives for every caller;
        // checking here too answers a bad field with 400 before the write queues behind a
        // batch (a few microseconds, against a trip through the writer).
        patch.validate()?;
        Ok((patch, self.expected_version))
    }
}

/// One change in an operation's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Global event sequence number.
    pub seq: u64,
    /// The operation's version after the change.
    pub version: u64,
    /// Status after the change.
    pub status: Status,
    /// Progress after the change.
    pub progress: u8,
    /// Status message after the change.
    pub message: Option<String>,
    /// When the change was committed.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl From<Event> for EventOut {
    fn from(e: Event) -> Self {
        EventOut {
            seq: e.seq,
            version: e.version,
            status: e.status,
            progress: e.progress,
            message: e.status_message,
            at: e.at,
        }
    }
}

/// An operation's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// The events.
    pub items: Vec<EventOut>,
}
