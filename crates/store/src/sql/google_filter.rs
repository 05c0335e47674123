//! Translation of a Google `filter` AST into SQL over the `operations` table. Each field
//! maps to the SQL expression that computes its Google rendering (`google_view` in the
//! domain crate), so the database filters on exactly what clients see. Every leaf is
//! TRUE or FALSE, never NULL, so that `NOT` keeps the in-memory meaning for unset fields
//! (`zone = x` false, `zone != x` true).
//!
//! Regular expressions must mean what they mean to Google (RE2 syntax, linear time, the
//! guarantee SECURITY.md gives). SQLite calls a `regexp()` function opsd registers, which
//! is Rust's `regex`. PostgreSQL's `~` is another dialect with backtracking, so there a
//! regex leaf becomes TRUE where the filter asks for a match and FALSE under a `NOT`:
//! the SQL then selects a superset of the answer, and the backend checks every row it
//! reads with the in-memory evaluator (the statement says `recheck`).

use opsd_domain::google_filter::{CompareOp, Field, Filter, Value, ValueType};
use opsd_domain::google_view::{self, NAME_PREFIX, UNKNOWN_DEFAULT, UNKNOWN_PREFIX};
use opsd_domain::{OpType, Status, micros};

use super::codes::{self, Coded};
use super::{Dialect, Param, Where};

/// The SQL expression of a field's Google rendering; `w` binds constants.
fn field_sql(field: Field, w: &mut Where) -> String {
    let sqlite = w.dialect == Dialect::Sqlite;
    match field {
        Field::Name => {
            let prefix = w.bind(Param::Text(NAME_PREFIX.into()));
            if sqlite {
                format!("({prefix} || {SQLITE_ID_TEXT})")
            } else {
                format!("({prefix} || id::text)")
            }
        }
        Field::Id => "seq".into(),
        Field::Status => codes::case_of("status", |s: Status| google_view::status(s).to_owned()),
        Field::OperationType => codes::case_of("type", |t: OpType| {
            google_view::operation_type(t).to_owned()
        }),
        Field::Progress => "progress".into(),
        Field::InsertTime => "created_at".into(),
        Field::StartTime => "started_at".into(),
        Field::EndTime => "ended_at".into(),
        // `user` is a reserved word in PostgreSQL; quoting works in both.
        Field::User => "\"user\"".into(),
        Field::ClientOperationId => "request_id".into(),
        Field::TargetLink => "target_link".into(),
        Field::Description => "description".into(),
        Field::StatusMessage => {
            let prefix = w.bind(Param::Text(UNKNOWN_PREFIX.into()));
            let default = w.bind(Param::Text(UNKNOWN_DEFAULT.into()));
            let unknown = format!("status = {}", Status::Unknown.code());
            format!(
                "(CASE WHEN {unknown} THEN {prefix} || COALESCE(status_message, {default}) \
                 ELSE status_message END)"
            )
        }
        Field::Region => "region".into(),
        Field::Zone => "zone".into(),
        Field::HttpErrorStatusCode => "http_error_status_code".into(),
    }
}

/// SQLite's 16-byte id as the lowercase hyphenated text clients see.
const SQLITE_ID_TEXT: &str = "lower(substr(hex(id), 1, 8) || '-' || substr(hex(id), 9, 4) || '-' \
     || substr(hex(id), 13, 4) || '-' || substr(hex(id), 17, 4) || '-' || substr(hex(id), 21))";

fn value_param(v: &Value) -> Param {
    match v {
        Value::String(s) => Param::Text(s.clone()),
        Value::Integer(n) => Param::Int(*n),
        Value::Timestamp(t) => Param::Int(micros(*t)),
    }
}

/// The SQL condition of `filter`, with its constants bound in `w`.
pub fn condition(filter: &Filter, w: &mut Where) -> String {
    translate(filter, w, true)
}

/// `positive`: whether this node is under an even number of `NOT`s (where a regex leaf
/// left to the recheck must be TRUE to keep a superset).
fn translate(filter: &Filter, w: &mut Where, positive: bool) -> String {
    match filter {
        Filter::And(items) => join(items, " AND ", w, positive),
        Filter::Or(items) => join(items, " OR ", w, positive),
        Filter::Not(inner) => format!("(NOT {})", translate(inner, w, !positive)),
        Filter::Compare { field, op, value } => {
            let col = field_sql(*field, w);
            let hole = w.bind(value_param(value));
            // Text compares byte by byte, whatever the database's default collation.
            let hole = match (w.dialect, value) {
                (Dialect::Postgres, Value::String(_)) => format!("({hole} COLLATE \"C\")"),
                _ => hole,
            };
            // SQL comparisons with NULL are NULL: unset means false, except for `!=`.
            let unset = if *op == CompareOp::Ne {
                "TRUE"
            } else {
                "FALSE"
            };
            format!("COALESCE({col} {} {hole}, {unset})", op.symbol())
        }
        Filter::Present(field) => {
            let col = field_sql(*field, w);
            match field.value_type() {
                ValueType::String => format!("COALESCE({col} <> '', FALSE)"),
                ValueType::Integer | ValueType::Timestamp => format!("({col} IS NOT NULL)"),
            }
        }
        Filter::Regex {
            field,
            pattern,
            negated,
        } => match w.dialect {
            Dialect::Sqlite => {
                let col = field_sql(*field, w);
                let hole = w.bind(Param::Text(pattern.as_str().to_owned()));
                let found = format!("COALESCE(regexp({hole}, CAST({col} AS TEXT)), FALSE)");
                if *negated {
                    format!("(NOT {found})")
                } else {
                    found
                }
            }
            Dialect::Postgres => {
                w.recheck = true;
                if positive { "TRUE" } else { "FALSE" }.into()
            }
        },
    }
}

fn join(items: &[Filter], sep: &str, w: &mut Where, positive: bool) -> String {
    let parts: Vec<String> = items.iter().map(|f| translate(f, w, positive)).collect();
    format!("({})", parts.join(sep))
}
