//! What a producer sends to create an operation, and how it becomes one.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Details, Kind, OpType, Operation, Status, ValidationError, validate};

/// A validated-on-demand request to create an operation (docs/api.md, "The rules a producer meets").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewOperation {
    pub project_id: String,
    pub kind: Kind,
    #[serde(rename = "type")]
    pub op_type: OpType,
    pub resource_id: String,
    pub details: Details,
    pub description: Option<String>,
    pub request_id: Option<String>,
    pub user: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub target_link: Option<String>,
    /// The creating request's trace context. Not part of the request's identity: a retry
    /// with the same `request_id` from another trace is still the same request.
    #[serde(skip)]
    pub trace_context: Option<crate::TraceContext>,
}

impl NewOperation {
    /// A request with only what every operation needs: no details, description,
    /// idempotency key or placement. Set the other fields on the value as needed.
    pub fn new(
        project_id: impl Into<String>,
        kind: Kind,
        op_type: OpType,
        resource_id: impl Into<String>,
    ) -> Self {
        Self {
            project_id: project_id.into(),
            kind,
            op_type,
            resource_id: resource_id.into(),
            details: Details::default(),
            description: None,
            request_id: None,
            user: None,
            region: None,
            zone: None,
            target_link: None,
            trace_context: None,
        }
    }

    /// Checks every field against its limits and character set.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::project_id("project_id", &self.project_id)?;
        validate::resource_id("resource_id", &self.resource_id)?;
        validate::details(&self.details)?;
        validate::opt_text(
            "description",
            self.description.as_deref(),
            validate::MAX_TEXT_LEN,
        )?;
        if let Some(r) = &self.request_id {
            validate::request_id("request_id", r)?;
        }
        validate::opt_text("user", self.user.as_deref(), validate::MAX_LABEL_LEN)?;
        validate::opt_text("region", self.region.as_deref(), validate::MAX_LABEL_LEN)?;
        validate::opt_text("zone", self.zone.as_deref(), validate::MAX_LABEL_LEN)?;
        validate::opt_text(
            "target_link",
            self.target_link.as_deref(),
            validate::MAX_LINK_LEN,
        )
    }

    /// A canonical JSON rendering of the request, used to tell whether a retried
    /// `request_id` carries the same body (maps are sorted, so key order never matters).
    pub fn canonical_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The operation this request creates, before the store assigns `seq`.
    pub fn into_operation(self, id: Uuid, now: OffsetDateTime) -> Operation {
        Operation {
            id,
            seq: 0,
            project_id: self.project_id,
            kind: self.kind,
            op_type: self.op_type,
            resource_id: self.resource_id,
            status: Status::Pending,
            details: self.details,
            progress: 0,
            status_message: None,
            description: self.description,
            error: None,
            warnings: Vec::new(),
            http_error_status_code: None,
            http_error_message: None,
            user: self.user,
            request_id: self.request_id,
            region: self.region,
            zone: self.zone,
            target_link: self.target_link,
            created_at: now,
            started_at: None,
            ended_at: None,
            updated_at: now,
            version: 1,
            cancel_requested: false,
            trace_context: self.trace_context,
        }
    }
}
