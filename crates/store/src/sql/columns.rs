//! The columns of an operation as both backends select them, in the order their row
//! readers take them. `project` stands for the project's name, looked up in `projects`
//! (the compact row keeps its number).

/// How many columns [`OPERATION_COLUMNS`] names (columns selected after it start here).
pub const OPERATION_COLUMN_COUNT: usize = 28;

/// The columns, in row-reader order.
pub const OPERATION_COLUMNS: [&str; OPERATION_COLUMN_COUNT] = [
    "seq",
    "id",
    "project",
    "kind",
    "type",
    "resource_id",
    "status",
    "progress",
    "status_message",
    "description",
    "details",
    "error",
    "warnings",
    "http_error_status_code",
    "http_error_message",
    // A reserved word in PostgreSQL; quoting works in both.
    "\"user\"",
    "request_id",
    "region",
    "zone",
    "target_link",
    "created_at",
    "started_at",
    "ended_at",
    "updated_at",
    "version",
    "cancel_requested",
    // The creating request's trace context: traceparent as 25 bytes, tracestate as text.
    "trace_parent",
    "trace_state",
];

/// [`OPERATION_COLUMNS`] as SELECT text, qualified with a table name or alias.
pub fn columns_of(table: &str) -> String {
    OPERATION_COLUMNS
        .iter()
        .map(|c| match *c {
            "project" => format!("(SELECT name FROM projects WHERE n = {table}.project)"),
            c => format!("{table}.{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
