//! The parsed form of a filter. The store translates these types to SQL, so they stay plain
//! data: every string and number is already checked against its field's type.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A filterable field of the Google Operation representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Id,
    Status,
    OperationType,
    Progress,
    InsertTime,
    StartTime,
    EndTime,
    User,
    ClientOperationId,
    TargetLink,
    Description,
    StatusMessage,
    Region,
    Zone,
    HttpErrorStatusCode,
}

/// The type a field's values are read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    String,
    Integer,
    Timestamp,
}

impl Field {
    /// Every field, in the order error messages list them.
    pub const ALL: [Field; 16] = [
        Field::Name,
        Field::Id,
        Field::Status,
        Field::OperationType,
        Field::Progress,
        Field::InsertTime,
        Field::StartTime,
        Field::EndTime,
        Field::User,
        Field::ClientOperationId,
        Field::TargetLink,
        Field::Description,
        Field::StatusMessage,
        Field::Region,
        Field::Zone,
        Field::HttpErrorStatusCode,
    ];

    /// The camelCase name used in filters and in the JSON representation.
    pub const fn wire_name(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Id => "id",
            Field::Status => "status",
            Field::OperationType => "operationType",
            Field::Progress => "progress",
            Field::InsertTime => "insertTime",
            Field::StartTime => "startTime",
            Field::EndTime => "endTime",
            Field::User => "user",
            Field::ClientOperationId => "clientOperationId",
            Field::TargetLink => "targetLink",
            Field::Description => "description",
            Field::StatusMessage => "statusMessage",
            Field::Region => "region",
            Field::Zone => "zone",
            Field::HttpErrorStatusCode => "httpErrorStatusCode",
        }
    }

    /// The field with this exact (case-sensitive) wire name.
    pub fn from_wire(name: &str) -> Option<Field> {
        Self::ALL.into_iter().find(|f| f.wire_name() == name)
    }

    pub const fn value_type(self) -> ValueType {
        match self {
            Field::Id | Field::Progress | Field::HttpErrorStatusCode => ValueType::Integer,
            Field::InsertTime | Field::StartTime | Field::EndTime => ValueType::Timestamp,
            _ => ValueType::String,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// A literal on the right of a comparison, already converted to its field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    String(String),
    Integer(i64),
    Timestamp(OffsetDateTime),
}

/// Comparison operators. `field:value` parses as [`CompareOp::Eq`], since every field is scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub const fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// A parsed filter. See the module documentation for what each node means.
#[derive(Debug, Clone)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        field: Field,
        op: CompareOp,
        value: Value,
    },
    /// `field:*`: the field is set and, for strings, not empty.
    Present(Field),
    /// `field eq 'pattern'` (or `ne` when `negated`). The pattern is already anchored as
    /// `^(?:pattern)$`, so it must match the whole value.
    Regex {
        field: Field,
        pattern: regex::Regex,
        negated: bool,
    },
}

// By hand because `regex::Regex` has no `PartialEq`; two patterns are equal when their source is.
impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Filter::And(a), Filter::And(b)) | (Filter::Or(a), Filter::Or(b)) => a == b,
            (Filter::Not(a), Filter::Not(b)) => a == b,
            (
                Filter::Compare { field, op, value },
                Filter::Compare {
                    field: f2,
                    op: o2,
                    value: v2,
                },
            ) => field == f2 && op == o2 && value == v2,
            (Filter::Present(a), Filter::Present(b)) => a == b,
            (
                Filter::Regex {
                    field,
                    pattern,
                    negated,
                },
                Filter::Regex {
                    field: f2,
                    pattern: p2,
                    negated: n2,
                },
            ) => field == f2 && negated == n2 && pattern.as_str() == p2.as_str(),
            _ => false,
        }
    }
}

impl Eq for Filter {}

impl Filter {
    /// Whether this is written in the regular-expression syntax. A parsed filter never mixes
    /// the two, so its first leaf decides.
    fn is_regex_syntax(&self) -> bool {
        match self {
            Filter::And(items) => items.first().is_some_and(Filter::is_regex_syntax),
            Filter::Regex { .. } => true,
            _ => false,
        }
    }
}

/// Writes filter syntax that parses back to an equal `Filter` (for any filter `parse` returns),
/// so a filter can be logged or echoed to the caller in canonical form.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The regular-expression syntax has no AND keyword, only juxtaposed terms.
            Filter::And(items) if self.is_regex_syntax() => join(f, items, " ", true),
            Filter::And(items) => join(f, items, " AND ", false),
            Filter::Or(items) => join(f, items, " OR ", false),
            Filter::Not(inner) => {
                f.write_str("NOT ")?;
                operand(f, inner, matches!(**inner, Filter::Not(_)))
            }
            Filter::Compare { field, op, value } => write!(f, "{field} {} {value}", op.symbol()),
            Filter::Present(field) => write!(f, "{field}:*"),
            Filter::Regex {
                field,
                pattern,
                negated,
            } => {
                let source = pattern.as_str();
                let source = source
                    .strip_prefix("^(?:")
                    .and_then(|s| s.strip_suffix(")$"))
                    .unwrap_or(source);
                let op = if *negated { "ne" } else { "eq" };
                write!(f, "{field} {op} ")?;
                quote(f, source)
            }
        }
    }
}

/// Writes `item`, parenthesised when it is a group (or `always`), so that it stays one operand.
fn operand(f: &mut fmt::Formatter<'_>, item: &Filter, always: bool) -> fmt::Result {
    if always || matches!(item, Filter::And(_) | Filter::Or(_)) {
        write!(f, "({item})")
    } else {
        write!(f, "{item}")
    }
}

fn join(f: &mut fmt::Formatter<'_>, items: &[Filter], sep: &str, always: bool) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        operand(f, item, always)?;
    }
    Ok(())
}

fn quote(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => quote(f, s),
            Value::Integer(n) => write!(f, "{n}"),
            // Parsed timestamps always format as RFC 3339; the fallback only avoids an error
            // (and a panic in `to_string`) for hand-built values outside its range.
            Value::Timestamp(t) => match t.format(&Rfc3339) {
                Ok(s) => f.write_str(&s),
                Err(_) => write!(f, "{t}"),
            },
        }
    }
}
