//! An operation as `google.longrunning.Operation`: its name, `opsd.v1.OperationMetadata`
//! packed in `metadata`, and for a finished one `error` (failed) or `response` (done).
//! The rules (names, codes) are the domain's `lro_view`; this file only builds messages.

use opsd_domain::lro_view;
use opsd_domain::{Operation, Status};
use opsd_grpc_proto::google::longrunning::{self, operation};
use opsd_grpc_proto::google::rpc;
use opsd_grpc_proto::opsd::v1::OperationMetadata;
use prost::Message;
use time::OffsetDateTime;

/// The type URL prefix every `Any` here uses.
const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// Packs `message` of type `full_name` into an `Any`.
pub fn pack(full_name: &str, message: &impl Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("{TYPE_URL_PREFIX}{full_name}"),
        value: message.encode_to_vec(),
    }
}

/// The `google.longrunning.Operation` of `op`.
pub fn operation(op: &Operation) -> longrunning::Operation {
    let result = match op.status {
        Status::Failed => Some(operation::Result::Error(error(op))),
        // Producers store no response payload (yet): a done operation answers Empty.
        Status::Done => Some(operation::Result::Response(pack(
            "google.protobuf.Empty",
            &(),
        ))),
        _ => None,
    };
    longrunning::Operation {
        name: lro_view::operation_name(op),
        metadata: Some(pack("opsd.v1.OperationMetadata", &metadata(op))),
        done: op.status.is_terminal(),
        result,
    }
}

fn metadata(op: &Operation) -> OperationMetadata {
    OperationMetadata {
        id: op.id.to_string(),
        project_id: op.project_id.clone(),
        kind: op.kind.as_str().to_owned(),
        r#type: op.op_type.as_str().to_owned(),
        resource_id: op.resource_id.clone(),
        status: op.status.as_str().to_owned(),
        progress: u32::from(op.progress),
        status_message: op.status_message.clone().unwrap_or_default(),
        user: op.user.clone().unwrap_or_default(),
        create_time: Some(timestamp(op.created_at)),
        update_time: Some(timestamp(op.updated_at)),
        start_time: op.started_at.map(timestamp),
        end_time: op.ended_at.map(timestamp),
        cancel_requested: op.cancel_requested,
        version: op.version,
    }
}

/// A failed operation's `google.rpc.Status`: the code by the domain's table, the first
/// error's message, and one `ErrorInfo` per error.
fn error(op: &Operation) -> rpc::Status {
    let errors = op
        .error
        .as_ref()
        .map(|e| e.errors.as_slice())
        .unwrap_or_default();
    let message = errors
        .first()
        .map(|e| e.message.clone())
        .or_else(|| op.http_error_message.clone())
        .unwrap_or_else(|| "the operation failed".into());
    let details = errors
        .iter()
        .map(|e| {
            let mut metadata = std::collections::HashMap::new();
            metadata.insert("message".to_owned(), e.message.clone());
            if let Some(location) = &e.location {
                metadata.insert("location".to_owned(), location.clone());
            }
            pack(
                "google.rpc.ErrorInfo",
                &rpc::ErrorInfo {
                    reason: e.code.clone(),
                    domain: "opsd".into(),
                    metadata,
                },
            )
        })
        .collect();
    rpc::Status {
        code: lro_view::error_code(op),
        message,
        details,
    }
}

fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        // Always 0..1e9, so the conversion cannot fail.
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    }
}
