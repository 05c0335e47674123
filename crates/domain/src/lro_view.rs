//! How an operation looks through `google.longrunning.Operations` (the gRPC dialect):
//! resource names, the list filter it accepts, page sizes, and the `google.rpc.Code` of a
//! failed operation. Pure rules; the server turns them into protobuf messages.

use uuid::Uuid;

use crate::google_filter::{CompareOp, Field, Filter, Value};
use crate::{Kind, ListFilter, OpType, Operation, Status, ValidationError, validate};

/// Page size of `ListOperations` when the request gives none (or 0).
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page: a larger `page_size` is lowered to this, as AIP-158 advises.
pub const MAX_PAGE_SIZE: usize = 500;

/// `google.rpc.Code` values used here (see `google/rpc/code.proto`).
pub mod code {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const ABORTED: i32 = 10;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// `projects/{project_id}/operations/{id}`.
pub fn operation_name(op: &Operation) -> String {
    format!("projects/{}/operations/{}", op.project_id, op.id)
}

/// The project and id an operation name stands for; `field` names the request field.
pub fn parse_operation_name(field: &str, name: &str) -> Result<(String, Uuid), ValidationError> {
    let rule = "must be projects/{project_id}/operations/{operation_id}, the id a UUID";
    let mut parts = name.split('/');
    let (Some("projects"), Some(project), Some("operations"), Some(id), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(ValidationError::new(field, rule));
    };
    validate::project_id(field, project)?;
    let id = Uuid::try_parse(id).map_err(|_| ValidationError::new(field, rule))?;
    Ok((project.to_owned(), id))
}

/// The project of a `ListOperations` parent, `projects/{project_id}`.
pub fn parse_parent(field: &str, name: &str) -> Result<String, ValidationError> {
    let project = name
        .strip_prefix("projects/")
        .filter(|p| !p.contains('/'))
        .ok_or_else(|| ValidationError::new(field, "must be projects/{project_id}"))?;
    validate::project_id(field, project)?;
    Ok(project.to_owned())
}

/// The page size for a requested `page_size`: 0 is the default, above the maximum is
/// the maximum, below 0 is an error.
pub fn page_size(requested: i32) -> Result<usize, ValidationError> {
    match usize::try_from(requested) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) => Ok(n.min(MAX_PAGE_SIZE)),
        Err(_) => Err(ValidationError::new("page_size", "must not be negative")),
    }
}

/// The `google.rpc.Code` a failed operation ends with: `CANCELLED` if it was cancelled,
/// otherwise the code its `http_error_status_code` stands for.
pub fn error_code(op: &Operation) -> i32 {
    let cancelled = op
        .error
        .as_ref()
        .and_then(|e| e.errors.first())
        .is_some_and(|e| e.code == crate::cancel::CANCELLED);
    if cancelled {
        code::CANCELLED
    } else {
        code_of_http_status(op.http_error_status_code)
    }
}

/// The `google.rpc.Code` an HTTP error status stands for (Google's own table, with
/// the other 4xx as `FAILED_PRECONDITION` and the other 5xx as `INTERNAL`).
pub fn code_of_http_status(status: Option<u16>) -> i32 {
    match status {
        None => code::UNKNOWN,
        Some(400) => code::INVALID_ARGUMENT,
        Some(401) => code::UNAUTHENTICATED,
        Some(403) => code::PERMISSION_DENIED,
        Some(404) => code::NOT_FOUND,
        Some(409) => code::ABORTED,
        Some(412) => code::FAILED_PRECONDITION,
        Some(429) => code::RESOURCE_EXHAUSTED,
        Some(499) => code::CANCELLED,
        Some(501) => code::UNIMPLEMENTED,
        Some(503) => code::UNAVAILABLE,
        Some(504) => code::DEADLINE_EXCEEDED,
        Some(400..=499) => code::FAILED_PRECONDITION,
        Some(500..=599) => code::INTERNAL,
        Some(_) => code::UNKNOWN,
    }
}

/// Applies an AIP-160 `filter` of `ListOperations` to `filter`: comparisons joined by
/// `AND`, over `done` (`true`/`false`) and `metadata.kind`, `metadata.type`,
/// `metadata.status`, `metadata.resource_id` (`=` only, a string in quotes or a bare
/// word). Anything else is refused with the token at fault named.
pub fn apply_filter(text: &str, filter: &mut ListFilter) -> Result<(), ValidationError> {
    let err = |message: String| ValidationError::new("filter", message);
    let tokens = tokenize(text).map_err(err)?;
    let mut rest = tokens.as_slice();
    let mut seen: Vec<&str> = Vec::new();
    while !rest.is_empty() {
        let [field, op, value, tail @ ..] = rest else {
            return Err(err(format!(
                "the comparison starting at '{}' is incomplete: write field = value",
                rest[0].text
            )));
        };
        if !FIELDS.contains(&field.text.as_str()) {
            return Err(err(format!(
                "'{}' cannot be filtered on: use {}",
                field.text,
                FIELDS.join(", ")
            )));
        }
        if op.text != "=" {
            return Err(err(format!(
                "'{}' is not supported here: only '=' (and AND between comparisons)",
                op.text
            )));
        }
        if seen.contains(&field.text.as_str()) {
            return Err(err(format!("'{}' is compared more than once", field.text)));
        }
        seen.push(&field.text);
        compare(filter, &field.text, value).map_err(err)?;
        rest = match tail {
            [] => tail,
            [and, more @ ..] if and.text == "AND" && !and.quoted && !more.is_empty() => more,
            [other, ..] => {
                return Err(err(format!(
                    "expected AND after a comparison, found '{}'",
                    other.text
                )));
            }
        };
    }
    Ok(())
}

/// The fields a filter may compare.
const FIELDS: &[&str] = &[
    "done",
    "metadata.kind",
    "metadata.type",
    "metadata.status",
    "metadata.resource_id",
];

fn compare(filter: &mut ListFilter, field: &str, value: &Token) -> Result<(), String> {
    let v = value.text.as_str();
    let one_of = |expected: String| format!("'{v}' is not a {field}: expected one of {expected}");
    match field {
        "done" => {
            let done = match (v, value.quoted) {
                ("true", false) => true,
                ("false", false) => false,
                _ => return Err(format!("done compares with true or false, not '{v}'")),
            };
            // Done and failed are both "DONE" in the Google view the store filters on.
            filter.expr = Some(Filter::Compare {
                field: Field::Status,
                op: if done { CompareOp::Eq } else { CompareOp::Ne },
                value: Value::String("DONE".into()),
            });
        }
        "metadata.kind" => {
            filter.kind = Some(Kind::parse(v).ok_or_else(|| one_of(Kind::expected()))?)
        }
        "metadata.type" => {
            filter.op_type = Some(OpType::parse(v).ok_or_else(|| one_of(OpType::expected()))?);
        }
        "metadata.status" => {
            filter.status = Some(Status::parse(v).ok_or_else(|| one_of(Status::expected()))?);
        }
        "metadata.resource_id" => {
            validate::resource_id("filter", v).map_err(|e| e.message)?;
            filter.resource_id = Some(v.to_owned());
        }
        other => return Err(format!("'{other}' cannot be filtered on")),
    }
    Ok(())
}

/// A word, an operator, or a quoted string (unquoted).
#[derive(Debug)]
struct Token {
    text: String,
    quoted: bool,
}

/// Filters longer than this are refused before they are read.
const MAX_FILTER_BYTES: usize = 4096;

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(format!("is longer than {MAX_FILTER_BYTES} bytes"));
    }
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some((_, q)) if q == c => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, e)) => s.push(e),
                        None => return Err("a string ends with a lone backslash".into()),
                    },
                    Some((_, ch)) => s.push(ch),
                    None => {
                        return Err(format!("the string starting at byte {start} is not closed"));
                    }
                }
            }
            tokens.push(Token {
                text: s,
                quoted: true,
            });
        } else if matches!(c, '=' | '!' | '<' | '>' | ':') {
            let mut op = String::new();
            while let Some(&(_, o)) = chars.peek() {
                if !matches!(o, '=' | '!' | '<' | '>' | ':') {
                    break;
                }
                op.push(o);
                chars.next();
            }
            tokens.push(Token {
                text: op,
                quoted: false,
            });
        } else if c.is_alphanumeric() || matches!(c, '_' | '.' | '-') {
            let mut word = String::new();
            while let Some(&(_, w)) = chars.peek() {
                if !(w.is_alphanumeric() || matches!(w, '_' | '.' | '-' | '/' | ':')) {
                    break;
                }
                word.push(w);
                chars.next();
            }
            tokens.push(Token {
                text: word,
                quoted: false,
            });
        } else {
            return Err(format!("unexpected '{c}' at byte {start}"));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(text: &str) -> Result<ListFilter, ValidationError> {
        let mut f = ListFilter::default();
        apply_filter(text, &mut f).map(|()| f)
    }

    #[test]
    fn names_round_trip_and_bad_names_name_the_field() {
        let id = Uuid::now_v7();
        let name = format!("projects/p-1/operations/{id}");
        assert_eq!(
            parse_operation_name("name", &name).unwrap(),
            ("p-1".into(), id)
        );
        for bad in [
            "",
            "projects/p-1",
            "projects/p-1/operations/not-a-uuid",
            &format!("projects//operations/{id}"),
            &format!("projects/p-1/operations/{id}/extra"),
            &format!("folders/p-1/operations/{id}"),
        ] {
            assert_eq!(
                parse_operation_name("name", bad).unwrap_err().field,
                "name",
                "{bad}"
            );
        }
        assert_eq!(parse_parent("name", "projects/p-1").unwrap(), "p-1");
        assert!(parse_parent("name", "projects/p-1/operations").is_err());
        assert!(parse_parent("name", "p-1").is_err());
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(7).unwrap(), 7);
        assert_eq!(page_size(501).unwrap(), 500);
        assert_eq!(page_size(-1).unwrap_err().field, "page_size");
    }

    #[test]
    fn http_status_table() {
        let table = [
            (None, 2),
            (Some(400), 3),
            (Some(401), 16),
            (Some(403), 7),
            (Some(404), 5),
            (Some(409), 10),
            (Some(412), 9),
            (Some(429), 8),
            (Some(499), 1),
            (Some(501), 12),
            (Some(503), 14),
            (Some(504), 4),
            (Some(418), 9),
            (Some(422), 9),
            (Some(500), 13),
            (Some(502), 13),
            (Some(599), 13),
        ];
        for (status, code) in table {
            assert_eq!(code_of_http_status(status), code, "{status:?}");
        }
    }

    #[test]
    fn filters_set_the_list_filter() {
        let f =
            filter(r#"metadata.status = "running" AND metadata.kind=vm AND done = false"#).unwrap();
        assert_eq!(f.status, Some(Status::Running));
        assert_eq!(f.kind, Some(Kind::Vm));
        assert!(matches!(
            f.expr,
            Some(Filter::Compare {
                op: CompareOp::Ne,
                ..
            })
        ));
        let f = filter(r#"metadata.type = 'delete' AND metadata.resource_id = "vm/a-1""#).unwrap();
        assert_eq!(f.op_type, Some(OpType::Delete));
        assert_eq!(f.resource_id.as_deref(), Some("vm/a-1"));
        assert!(filter("").unwrap().expr.is_none());
    }

    #[test]
    fn unsupported_filters_name_the_token() {
        for (text, token) in [
            ("metadata.progress = 5", "'metadata.progress'"),
            ("metadata.progress > 5", "'metadata.progress'"),
            ("done != true", "'!='"),
            ("done = true OR done = false", "'OR'"),
            ("metadata.status = \"sleeping\"", "'sleeping'"),
            ("done = yes", "'yes'"),
            ("done =", "'done'"),
            ("done = true AND", "'AND'"),
            (
                "metadata.kind = vm AND metadata.kind = vpc",
                "'metadata.kind'",
            ),
            ("(done = true)", "'('"),
        ] {
            let e = filter(text).unwrap_err();
            assert_eq!(e.field, "filter");
            assert!(e.message.contains(token), "{text}: {}", e.message);
        }
    }
}
