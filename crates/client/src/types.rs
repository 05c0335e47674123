//! Wire types of the API, as the SDK sends and reads them. The enums and nested records
//! (`Kind`, `Status`, `Details`, `OperationError`…) are opsd's own domain types, so the
//! SDK cannot drift from the server on what a value may be.
//!
//! The records themselves are the SDK's own: the API's bodies, not the domain's types
//! that look like them (`opsd_domain::Operation` carries the store's `seq` and needs
//! every field; `opsd_domain::NewOperation` has no builder and a non-optional
//! `details`). The SDK cannot depend on the server, so `tests/it/contract/` checks
//! each record against the server's OpenAPI document instead.

use opsd_domain::{Details, Kind, OpType, OperationError, Role, Status, Warning};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// An operation, as `GET /v1/operations/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// UUIDv7, server-assigned.
    pub id: Uuid,
    /// Project the operation belongs to.
    pub project_id: String,
    /// Kind of resource acted on.
    pub kind: Kind,
    /// What is done to the resource.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// The resource acted on.
    pub resource_id: String,
    /// Where it is in its life.
    pub status: Status,
    /// Field diffs.
    #[serde(default)]
    pub details: Details,
    /// 0–100.
    #[serde(default)]
    pub progress: u8,
    /// Human text about the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Set at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    /// Warnings, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// HTTP status of the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_error_status_code: Option<u16>,
    /// HTTP message of the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_error_message: Option<String>,
    /// Who asked for the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The producer's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Region of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zone of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Link to the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_link: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it first ran.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// When it reached done or failed.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended_at: Option<OffsetDateTime>,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// +1 on every change; the ETag.
    pub version: u64,
    /// Someone asked to cancel it; its worker should stop.
    #[serde(default)]
    pub cancel_requested: bool,
    /// W3C trace context of the request that created it, if any; a worker sends it with
    /// its heartbeats and final update so that they join that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<opsd_domain::TraceContext>,
}

impl Operation {
    /// `done` or `failed`: nothing will change any more.
    pub fn is_finished(&self) -> bool {
        self.status.is_terminal()
    }
}

/// A request to create an operation. Build it with [`NewOperation::new`] and set the
/// optional fields you need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewOperation {
    /// Project of the operation.
    pub project_id: String,
    /// Kind of resource.
    pub kind: Kind,
    /// What is done to the resource.
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// The resource acted on.
    pub resource_id: String,
    /// Field diffs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Idempotency key: the same key and body return the first operation; it also lets
    /// the SDK retry a create whose answer was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who asked for the change (default: the key's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Region of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zone of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Link to the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_link: Option<String>,
}

impl NewOperation {
    /// A request with the required fields and nothing else.
    pub fn new(
        project_id: impl Into<String>,
        kind: Kind,
        op_type: OpType,
        resource_id: impl Into<String>,
    ) -> Self {
        NewOperation {
            project_id: project_id.into(),
            kind,
            op_type,
            resource_id: resource_id.into(),
            details: None,
            description: None,
            request_id: None,
            user: None,
            region: None,
            zone: None,
            target_link: None,
        }
    }

    /// Sets the idempotency key.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// A change to an operation; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OperationPatch {
    /// New status, as the state machine allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// New progress (never lower).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// New status message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Errors; required with `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    /// Warnings to append.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<Warning>>,
    /// HTTP status of the failure (400–599); only with `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_error_status_code: Option<u16>,
    /// HTTP message of the failure; only with `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_error_message: Option<String>,
    /// The lease token, for an operation leased by [`claim`](crate::Client::claim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The operations of the page.
    pub items: Vec<Operation>,
    /// Cursors and count.
    pub pagination: Pagination,
}

/// Where a page sits in its list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pagination {
    /// Cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
    /// Cursor of the previous page; `None` on the first.
    pub previous_cursor: Option<String>,
    /// How many operations match in all.
    pub total_count: u64,
}

/// One change in an operation's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
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
    /// When it was committed.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Deserialize)]
pub(crate) struct EventList {
    pub items: Vec<Event>,
}

/// A claimed operation and its lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The operation, now `running`.
    pub operation: Operation,
    /// The secret for heartbeats and updates; only this answer carries it.
    pub lease_token: String,
    /// When the lease runs out unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: OffsetDateTime,
}

/// A renewed lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Renewed {
    /// The operation (check `cancel_requested`).
    pub operation: Operation,
    /// The new expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_expires_at: OffsetDateTime,
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Key id.
    pub id: Uuid,
    /// Human name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Project ids, or `["*"]`.
    pub projects: Vec<String>,
    /// The start of the key.
    pub prefix: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was revoked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A new key and its secret, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedKey {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret to send as `Authorization: Bearer <secret>`.
    pub key_secret: String,
}

#[derive(Deserialize)]
pub(crate) struct KeyList {
    pub items: Vec<ApiKey>,
}
