//! In-memory evaluation of a parsed filter. The SQL translation in the store must give the same
//! answers; the rules are listed in the module documentation under "Evaluation".

use std::cmp::Ordering;

use time::OffsetDateTime;

use super::ast::{CompareOp, Field, Filter, Value};

/// A field's value as the caller reads it from an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Str(&'a str),
    Int(i64),
    Time(OffsetDateTime),
}

impl CompareOp {
    /// Whether `actual OP wanted` holds, given `actual.cmp(wanted)`.
    pub fn holds(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering.is_eq(),
            CompareOp::Ne => ordering.is_ne(),
            CompareOp::Lt => ordering.is_lt(),
            CompareOp::Le => ordering.is_le(),
            CompareOp::Gt => ordering.is_gt(),
            CompareOp::Ge => ordering.is_ge(),
        }
    }
}

impl Filter {
    /// Whether an operation matches. `get` returns a field's value, or `None` when it is unset.
    ///
    /// A value of the wrong kind for its field (say `Str` for `progress`) is treated as unset.
    pub fn matches<'v>(&self, get: &dyn Fn(Field) -> Option<FieldValue<'v>>) -> bool {
        match self {
            Filter::And(items) => items.iter().all(|item| item.matches(get)),
            Filter::Or(items) => items.iter().any(|item| item.matches(get)),
            Filter::Not(inner) => !inner.matches(get),
            Filter::Present(field) => !matches!(get(*field), None | Some(FieldValue::Str(""))),
            Filter::Compare { field, op, value } => {
                match get(*field).and_then(|actual| compare(actual, value)) {
                    Some(ordering) => op.holds(ordering),
                    None => *op == CompareOp::Ne,
                }
            }
            Filter::Regex {
                field,
                pattern,
                negated,
            } => {
                let found = match get(*field) {
                    Some(FieldValue::Str(s)) => pattern.is_match(s),
                    Some(FieldValue::Int(n)) => pattern.is_match(&n.to_string()),
                    Some(FieldValue::Time(_)) | None => false,
                };
                found != *negated
            }
        }
    }
}

/// `actual.cmp(wanted)`, or `None` when the kinds differ.
fn compare(actual: FieldValue<'_>, wanted: &Value) -> Option<Ordering> {
    match (actual, wanted) {
        // `str` orders by bytes, which is also what SQLite's BINARY collation does.
        (FieldValue::Str(a), Value::String(b)) => Some(a.cmp(b.as_str())),
        (FieldValue::Int(a), Value::Integer(b)) => Some(a.cmp(b)),
        (FieldValue::Time(a), Value::Timestamp(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    use time::macros::datetime;

    use super::super::parse;
    use super::*;

    fn filter(s: &str) -> Filter {
        parse(s).unwrap().unwrap()
    }

    /// An operation with only `name`, `progress` and `insertTime` set, and an empty `user`.
    fn sample(field: Field) -> Option<FieldValue<'static>> {
        match field {
            Field::Name => Some(FieldValue::Str("operation-1")),
            Field::User => Some(FieldValue::Str("")),
            Field::Progress => Some(FieldValue::Int(10)),
            Field::InsertTime => Some(FieldValue::Time(datetime!(2026-01-01 12:00 UTC))),
            _ => None,
        }
    }

    fn check(s: &str) -> bool {
        filter(s).matches(&sample)
    }

    #[test]
    fn absent_field_fails_everything_but_not_equal() {
        for op in ["=", ":", "<", "<=", ">", ">="] {
            assert!(!check(&format!("zone {op} x")), "zone {op} x");
            assert!(!check(&format!("id {op} 1")), "id {op} 1");
            assert!(
                !check(&format!("endTime {op} 2026-01-01T00:00:00Z")),
                "endTime {op}"
            );
        }
        assert!(check("zone != x"));
        assert!(check("id != 1"));
        assert!(check("endTime != 2026-01-01T00:00:00Z"));
        assert!(!check("zone:*"));
        assert!(check("NOT zone = x"));
        assert!(check("-zone:*"));
    }

    #[test]
    fn absent_field_and_regex() {
        assert!(!check("zone eq '.*'"));
        assert!(check("zone ne '.*'"));
        assert!(!check("id eq '.*'"));
    }

    #[test]
    fn empty_string_is_absent_only_for_presence() {
        assert!(!check("user:*"));
        assert!(check("user = ''"));
        assert!(!check("user != ''"));
        assert!(check("user < a"));
        assert!(check("user eq ''"));
        assert!(check("user eq '.*'"));
    }

    #[test]
    fn present_fields() {
        assert!(check("name:*"));
        assert!(check("progress:*"));
        assert!(check("insertTime:*"));
    }

    #[test]
    fn strings_compare_by_bytes() {
        assert!(check("name = operation-1"));
        assert!(check("name:operation-1"));
        assert!(!check("name = Operation-1"));
        assert!(check("name > Operation-1"));
        assert!(check("name < operation-2"));
        assert!(check("name <= operation-1"));
        assert!(check("name >= operation-1"));
        assert!(check("name != operation"));
        assert!(check("name > operation"));
        assert!(!check("name > é"));
    }

    #[test]
    fn integers_compare_numerically() {
        assert!(check("progress > 9"));
        assert!(check("progress < 100"));
        assert!(check("progress >= 10"));
        assert!(check("progress <= 10"));
        assert!(check("progress = 10"));
        assert!(!check("progress != 10"));
        assert!(check("progress > -5"));
    }

    #[test]
    fn timestamps_compare_as_instants() {
        assert!(check("insertTime = 2026-01-01T13:00:00+01:00"));
        assert!(check("insertTime > 2026-01-01T11:59:59.999Z"));
        assert!(check("insertTime < '2026-01-01T12:00:00.000001Z'"));
        assert!(!check("insertTime < 2026-01-01T12:00:00Z"));
    }

    #[test]
    fn regex_matches_whole_value() {
        assert!(check("name eq 'operation-.*'"));
        assert!(!check("name eq 'op'"));
        assert!(!check("name eq 'operation'"));
        assert!(check("name ne 'op'"));
        assert!(check("name eq 'op|operation-1'"));
        assert!(check("(name eq 'op.*') (progress eq '1\\d')"));
        assert!(!check("progress eq 1"));
    }

    #[test]
    fn boolean_operators() {
        assert!(check("name:* AND progress:*"));
        assert!(!check("name:* AND zone:*"));
        assert!(check("zone:* OR name:*"));
        assert!(!check("zone:* OR region:*"));
        assert!(check("NOT zone:*"));
        assert!(check("name:* (zone:* OR progress = 10)"));
    }

    #[test]
    fn wrong_kind_counts_as_absent() {
        let get = |_: Field| Some(FieldValue::Int(5));
        assert!(!filter("name = x").matches(&get));
        assert!(filter("name != x").matches(&get));
        let get = |_: Field| Some(FieldValue::Time(datetime!(2026-01-01 0:00 UTC)));
        assert!(!filter("name eq '.*'").matches(&get));
        assert!(filter("name ne '.*'").matches(&get));
    }

    #[test]
    fn empty_groups() {
        let get = |_: Field| None;
        assert!(Filter::And(vec![]).matches(&get));
        assert!(!Filter::Or(vec![]).matches(&get));
    }
}
