//! Translation of a Google `filter` AST into SQL over the `operations` table. Each field
//! maps to the SQL expression that computes its Google rendering (`google_view` in the
//! domain crate), so the database filters on exactly what clients see. Every leaf
//! yields 0 or 1, never NULL, so that `NOT` keeps the in-memory semantics for unset
//! fields (`zone = x` false, `zone != x` true).

use opsd_domain::google_filter::{CompareOp, Field, Filter, Value, ValueType};
use opsd_domain::google_view::{NAME_PREFIX, UNKNOWN_DEFAULT, UNKNOWN_PREFIX};
use opsd_domain::micros;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value as SqlValue;

use super::query::Where;

/// The SQL expression of a field's Google rendering; `bind` supplies constants.
fn field_sql(field: Field, w: &mut Where) -> String {
    match field {
        Field::Name => format!("({} || id)", w.bind(SqlValue::Text(NAME_PREFIX.into()))),
        Field::Id => "seq".into(),
        Field::Status => "(CASE status WHEN 'pending' THEN 'PENDING' WHEN 'done' THEN 'DONE' \
                          WHEN 'failed' THEN 'DONE' ELSE 'RUNNING' END)"
            .into(),
        Field::OperationType => "(CASE type WHEN 'create' THEN 'insert' ELSE type END)".into(),
        Field::Progress => "progress".into(),
        Field::InsertTime => "created_at".into(),
        Field::StartTime => "started_at".into(),
        Field::EndTime => "ended_at".into(),
        Field::User => "user".into(),
        Field::ClientOperationId => "request_id".into(),
        Field::TargetLink => "target_link".into(),
        Field::Description => "description".into(),
        Field::StatusMessage => {
            let prefix = w.bind(SqlValue::Text(UNKNOWN_PREFIX.into()));
            let default = w.bind(SqlValue::Text(UNKNOWN_DEFAULT.into()));
            format!(
                "(CASE WHEN status = 'unknown' THEN {prefix} || COALESCE(status_message, {default}) \
                 ELSE status_message END)"
            )
        }
        Field::Region => "region".into(),
        Field::Zone => "zone".into(),
        Field::HttpErrorStatusCode => "http_error_status_code".into(),
    }
}

fn value_sql(v: &Value) -> SqlValue {
    match v {
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Integer(n) => SqlValue::Integer(*n),
        Value::Timestamp(t) => SqlValue::Integer(micros(*t)),
    }
}

/// The SQL condition of `filter`, with its constants bound in `w`.
pub fn condition(filter: &Filter, w: &mut Where) -> String {
    match filter {
        Filter::And(items) => join(items, " AND ", w),
        Filter::Or(items) => join(items, " OR ", w),
        Filter::Not(inner) => format!("(NOT {})", condition(inner, w)),
        Filter::Compare { field, op, value } => {
            let col = field_sql(*field, w);
            let hole = w.bind(value_sql(value));
            // SQL comparisons with NULL are NULL: unset means false, except for `!=`.
            let unset = if *op == CompareOp::Ne { 1 } else { 0 };
            format!("COALESCE({col} {} {hole}, {unset})", op.symbol())
        }
        Filter::Present(field) => {
            let col = field_sql(*field, w);
            match field.value_type() {
                ValueType::String => format!("COALESCE({col} != '', 0)"),
                ValueType::Integer | ValueType::Timestamp => format!("({col} IS NOT NULL)"),
            }
        }
        Filter::Regex {
            field,
            pattern,
            negated,
        } => {
            let col = field_sql(*field, w);
            let hole = w.bind(SqlValue::Text(pattern.as_str().to_owned()));
            let found = format!("COALESCE(regexp({hole}, CAST({col} AS TEXT)), 0)");
            if *negated {
                format!("(NOT {found})")
            } else {
                found
            }
        }
    }
}

fn join(items: &[Filter], sep: &str, w: &mut Where) -> String {
    let parts: Vec<String> = items.iter().map(|f| condition(f, w)).collect();
    format!("({})", parts.join(sep))
}

/// Registers `regexp(pattern, text)` on a connection: 1 when the (already anchored)
/// pattern matches, NULL when `text` is NULL. Compiled patterns are cached per statement.
pub fn register_regexp(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re = ctx.get_or_create_aux(
                0,
                |v| -> Result<regex::Regex, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(regex::Regex::new(v.as_str()?)?)
                },
            )?;
            let text: Option<String> = ctx.get(1)?;
            Ok(text.map(|t| re.is_match(&t)))
        },
    )
}
