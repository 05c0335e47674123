//! How the canonical operation reads in the Google Deployment Manager dialect (docs/deployment-manager.md).
//! The HTTP renderer, the in-memory filter evaluation and the store's SQL translation of
//! filters all derive from these rules, so a filter sees exactly what a client sees.

use uuid::Uuid;

use crate::google_filter::{Field, FieldValue, Filter, Value};
use crate::{OpType, Operation, Status, truncate_micros};

/// Prefix of the Google `name` of an operation: `operation-<uuid>`.
pub const NAME_PREFIX: &str = "operation-";
/// Prefix of the `statusMessage` of an operation whose outcome is unknown.
pub const UNKNOWN_PREFIX: &str = "UNKNOWN: ";
/// What follows [`UNKNOWN_PREFIX`] when the operation has no status message of its own.
pub const UNKNOWN_DEFAULT: &str = "opsd no longer knows the outcome of this operation";

/// `operation-<uuid>`.
pub fn name(id: Uuid) -> String {
    format!("{NAME_PREFIX}{id}")
}

/// Reads an operation name back (`operation-<uuid>`; a bare UUID is accepted too).
pub fn parse_name(s: &str) -> Option<Uuid> {
    Uuid::parse_str(s.strip_prefix(NAME_PREFIX).unwrap_or(s)).ok()
}

/// Google has three statuses: `unknown` is still `RUNNING` (it may yet be settled) and
/// `failed` is `DONE` with an `error`.
pub fn status(s: Status) -> &'static str {
    match s {
        Status::Pending => "PENDING",
        Status::Running | Status::Unknown => "RUNNING",
        Status::Done | Status::Failed => "DONE",
    }
}

/// Google's `operationType`: `insert` for creates, the type's name otherwise.
pub fn operation_type(t: OpType) -> &'static str {
    match t {
        OpType::Create => "insert",
        OpType::Update => "update",
        OpType::Delete => "delete",
        OpType::Restart => "restart",
    }
}

/// The `statusMessage`: for `unknown` operations it says so, since `status` cannot.
pub fn status_message(op: &Operation) -> Option<String> {
    match op.status {
        Status::Unknown => Some(format!(
            "{UNKNOWN_PREFIX}{}",
            op.status_message.as_deref().unwrap_or(UNKNOWN_DEFAULT)
        )),
        _ => op.status_message.clone(),
    }
}

/// The filterable fields of one operation, as rendered for Google clients.
struct View<'a> {
    op: &'a Operation,
    name: String,
    status_message: Option<String>,
}

impl View<'_> {
    fn get(&self, field: Field) -> Option<FieldValue<'_>> {
        let op = self.op;
        let seq = i64::try_from(op.seq).unwrap_or(i64::MAX);
        match field {
            Field::Name => Some(FieldValue::Str(&self.name)),
            Field::Id => Some(FieldValue::Int(seq)),
            Field::Status => Some(FieldValue::Str(status(op.status))),
            Field::OperationType => Some(FieldValue::Str(operation_type(op.op_type))),
            Field::Progress => Some(FieldValue::Int(i64::from(op.progress))),
            Field::InsertTime => Some(FieldValue::Time(op.created_at)),
            Field::StartTime => op.started_at.map(FieldValue::Time),
            Field::EndTime => op.ended_at.map(FieldValue::Time),
            Field::User => text(&op.user),
            Field::ClientOperationId => text(&op.request_id),
            Field::TargetLink => text(&op.target_link),
            Field::Description => text(&op.description),
            Field::StatusMessage => text(&self.status_message),
            Field::Region => text(&op.region),
            Field::Zone => text(&op.zone),
            Field::HttpErrorStatusCode => op
                .http_error_status_code
                .map(|c| FieldValue::Int(i64::from(c))),
        }
    }
}

fn text(v: &Option<String>) -> Option<FieldValue<'_>> {
    v.as_deref().map(FieldValue::Str)
}

/// Whether `op` matches `filter` as a Google client would see it.
pub fn matches(filter: &Filter, op: &Operation) -> bool {
    let view = View {
        op,
        name: name(op.id),
        status_message: status_message(op),
    };
    filter.matches(&|f| view.get(f))
}

/// Drops sub-microsecond precision from the filter's timestamps: opsd keeps times to the
/// microsecond, and the store compares in microseconds.
pub fn truncate_times(filter: Filter) -> Filter {
    match filter {
        Filter::And(items) => Filter::And(items.into_iter().map(truncate_times).collect()),
        Filter::Or(items) => Filter::Or(items.into_iter().map(truncate_times).collect()),
        Filter::Not(inner) => Filter::Not(Box::new(truncate_times(*inner))),
        Filter::Compare {
            field,
            op,
            value: Value::Timestamp(t),
        } => Filter::Compare {
            field,
            op,
            value: Value::Timestamp(truncate_micros(t)),
        },
        other => other,
    }
}
