//! The Operation resource of Google Cloud Deployment Manager v2, as in the seed
//! (`../shared/seeds/004_*.txt`): camelCase, empty fields omitted, mapped from the
//! canonical record by the rules in `opsd_domain::google_view`.

use opsd_domain::{Operation, OperationError, Warning, google_view};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A Deployment Manager operation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GoogleOperation {
    /// Always `deploymentmanager#operation`.
    pub kind: &'static str,
    /// The operation's `seq`, as a decimal string.
    pub id: String,
    /// `operation-<uuid>`.
    pub name: String,
    /// `insert`, `update`, `delete` or `restart`.
    pub operation_type: &'static str,
    /// `PENDING`, `RUNNING` or `DONE`.
    pub status: &'static str,
    /// Human text; says so when the outcome is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// 0–100.
    pub progress: u8,
    /// When the operation was requested (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub insert_time: OffsetDateTime,
    /// Deprecated by Google; the same as `insertTime`.
    #[serde(with = "time::serde::rfc3339")]
    pub creation_timestamp: OffsetDateTime,
    /// When it started running.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<OffsetDateTime>,
    /// When it finished.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<OffsetDateTime>,
    /// Who asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The producer's `request_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_operation_id: Option<String>,
    /// Link to the resource acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_link: Option<String>,
    /// Link to this operation.
    pub self_link: String,
    /// Region of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zone of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Set at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Present when the operation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    /// Warnings raised while processing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// HTTP status of the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_error_status_code: Option<u16>,
    /// HTTP message of the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_error_message: Option<String>,
    /// opsd extension: someone asked to cancel this operation (omitted when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub cancel_requested: bool,
}

impl GoogleOperation {
    /// Renders `op`; `base` is the scheme and host the client reached (for `selfLink`).
    pub fn new(op: Operation, base: &str) -> Self {
        let name = google_view::name(op.id);
        let status_message = google_view::status_message(&op);
        GoogleOperation {
            kind: "deploymentmanager#operation",
            id: op.seq.to_string(),
            self_link: format!(
                "{base}/deploymentmanager/v2/projects/{}/global/operations/{name}",
                op.project_id
            ),
            name,
            operation_type: google_view::operation_type(op.op_type),
            status: google_view::status(op.status),
            status_message,
            progress: op.progress,
            insert_time: op.created_at,
            creation_timestamp: op.created_at,
            start_time: op.started_at,
            end_time: op.ended_at,
            user: op.user,
            client_operation_id: op.request_id,
            target_link: op.target_link,
            region: op.region,
            zone: op.zone,
            description: op.description,
            error: op.error,
            warnings: op.warnings,
            http_error_status_code: op.http_error_status_code,
            http_error_message: op.http_error_message,
            cancel_requested: op.cancel_requested,
        }
    }
}

/// A page of `operations.list`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GoogleOperationList {
    /// The operations of this page.
    pub operations: Vec<GoogleOperation>,
    /// Token of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
