//! The SQL of a copy, the same text on both backends (SQLite numbers the `$n`
//! parameters itself): which columns a copy carries, and how it reads and writes them.

/// The stored columns of an operation a copy writes, in
/// [`OperationRow`](super::OperationRow) order after `seq` (the same names on both
/// backends).
pub const OPERATION_COLUMNS: [&str; 32] = [
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
    "\"user\"",
    "request_id",
    "request_hash",
    "region",
    "zone",
    "target_link",
    "created_at",
    "started_at",
    "ended_at",
    "updated_at",
    "version",
    "lease_token_hash",
    "lease_worker",
    "lease_expires_at",
    "lease_duration_ms",
    "cancel_requested",
    "trace_parent",
    "trace_state",
];

/// The columns of an event a copy writes (besides `seq` and `op_seq`), in
/// [`EventRow`](super::EventRow) order after the operation id.
pub const EVENT_COLUMNS: [&str; 13] = [
    "project",
    "version",
    "status",
    "progress",
    "status_message",
    "at",
    "started_at",
    "ended_at",
    "error",
    "warnings",
    "http_error_status_code",
    "http_error_message",
    "cancel_requested",
];

/// Reads operation rows (seq, then [`OPERATION_COLUMNS`] with the project's name) by id
/// (`$1`).
pub fn select_operation_sql() -> String {
    let columns: Vec<String> = OPERATION_COLUMNS
        .iter()
        .map(|c| match *c {
            "project" => "p.name".to_owned(),
            c => format!("o.{c}"),
        })
        .collect();
    format!(
        "SELECT o.seq, {} FROM operations o JOIN projects p ON p.n = o.project WHERE o.id = $1",
        columns.join(", ")
    )
}

/// Reads events after `$1` in seq order, at most `$2`, with their operation's id and
/// their project's name.
pub fn select_events_sql() -> String {
    let columns: Vec<String> = EVENT_COLUMNS
        .iter()
        .map(|c| match *c {
            "project" => "p.name".to_owned(),
            c => format!("e.{c}"),
        })
        .collect();
    format!(
        "SELECT e.seq, o.id, {} FROM events e JOIN operations o ON o.seq = e.op_seq \
         JOIN projects p ON p.n = e.project WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
        columns.join(", ")
    )
}

/// Inserts an operation (`$1`… in [`OPERATION_COLUMNS`] order, then `extra`, the
/// columns a backend sets itself, such as PostgreSQL's `seq`; the project as its
/// number). Run only after [`update_operation_sql`] changed no row: an upsert
/// (`ON CONFLICT DO UPDATE`) would take a seq from the counter even when it updates, and
/// leave gaps that the source did not have.
pub fn insert_operation_sql(extra: &[&str]) -> String {
    let columns: Vec<&str> = OPERATION_COLUMNS.iter().chain(extra).copied().collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO operations ({}) VALUES ({})",
        columns.join(", "),
        params.join(", ")
    )
}

/// Updates every column of the operation whose id is `$1`, with the parameters of
/// [`insert_operation_sql`].
pub fn update_operation_sql() -> String {
    let sets: Vec<String> = OPERATION_COLUMNS
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    format!("UPDATE operations SET {} WHERE id = $1", sets.join(", "))
}

/// Inserts an API key, or updates the one with its id (`$1`…`$8`).
pub const UPSERT_KEY_SQL: &str = "INSERT INTO api_keys (id, name, role, projects, key_hash, \
    key_prefix, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, \
    projects = excluded.projects, revoked_at = excluded.revoked_at";

/// Every API key, in [`KeyRow`](super::KeyRow) order.
pub const SELECT_KEYS_SQL: &str = "SELECT id, name, role, projects, key_hash, key_prefix, \
    created_at, revoked_at FROM api_keys ORDER BY created_at, id";
