//! The `filter` parameter of `operations.list`, as in Google Cloud Deployment Manager v2.
//!
//! A filter is written in one of two syntaxes. They cannot be mixed in one filter. An empty
//! filter (or one of only whitespace) matches every operation.
//!
//! # Comparison syntax (AIP-160)
//!
//! ```text
//! filter      = [ expression ]
//! expression  = sequence { "AND" sequence }
//! sequence    = factor { factor }              (terms side by side mean AND)
//! factor      = term { "OR" term }
//! term        = [ "NOT" | "-" ] simple
//! simple      = "(" expression ")" | restriction
//! restriction = field operator value | field ":" "*"
//! operator    = "=" | "!=" | "<" | "<=" | ">" | ">=" | ":"
//! value       = '"' { character } '"' | "'" { character } "'" | bare
//! bare        = one or more characters other than whitespace and ")"
//! ```
//!
//! - Whitespace (any Unicode whitespace) may stand between any two tokens. It is needed only
//!   where two words would run together, and after a bare value, which it ends.
//! - `AND`, `OR` and `NOT` are keywords only in upper case. `NOT` and `-` apply to the
//!   restriction or parenthesised group right after them.
//! - Precedence, tightest first: `NOT` and `-`, then `OR`, then `AND` (written or implied).
//!   So `a AND b OR c` means `a AND (b OR c)`, `a b OR c` means `a AND (b OR c)`, and
//!   `NOT a OR b` means `(NOT a) OR b`.
//! - `field:value` means the same as `field = value`, since every field holds a single value.
//!   `field:*` holds when the field is set; see "Evaluation".
//! - Inside quotes, `\"`, `\'` and `\\` stand for the character after the backslash. Any other
//!   backslash stays as written.
//! - A value is read as its field's type. Integer fields take a decimal `i64` (such as `-5`).
//!   Timestamp fields take RFC 3339 (such as `2026-01-01T00:00:00Z`). String fields take the
//!   text as it is, so `description = true` compares with the string `true`. Quoting does not
//!   change the type: `progress = "50"` is an integer comparison. `status` takes only
//!   `PENDING`, `RUNNING` or `DONE` (case-sensitive). A value that does not fit is an error.
//!
//! Example: `status != DONE AND (insertTime >= 2026-01-01T00:00:00Z OR -user:*)`.
//!
//! # Regular-expression syntax (Compute Engine)
//!
//! ```text
//! filter = term { term }                       (terms side by side mean AND)
//! term   = "(" term { term } ")" | field ( "eq" | "ne" ) value
//! ```
//!
//! Example: `(name eq 'operation-.*') (status ne DONE)`. The value is quoted or bare, as above,
//! and is an RE2 pattern ([`regex`] crate syntax). It must match the *whole* value: `name eq op`
//! does not match `operation-1`. `ne` is the negation of `eq`. On an integer field the pattern
//! is matched against the decimal number. Patterns cannot be used on timestamp fields. `AND`,
//! `OR`, `NOT`, `-` and the comparison operators cannot appear in this syntax.
//!
//! # Fields
//!
//! Names are case-sensitive, as in the JSON representation of an operation.
//!
//! | type      | fields |
//! |-----------|--------|
//! | string    | `name`, `status`, `operationType`, `user`, `clientOperationId`, `targetLink`, `description`, `statusMessage`, `region`, `zone` |
//! | integer   | `id`, `progress`, `httpErrorStatusCode` |
//! | timestamp | `insertTime`, `startTime`, `endTime` |
//!
//! # Evaluation
//!
//! The store's SQL translation gives the same results as [`Filter::matches`]:
//!
//! - When a field is unset, `=`, `<`, `<=`, `>`, `>=`, `:`, `:*` and `eq` are false, and `!=`
//!   and `ne` are true. `NOT` and `-` invert the result: `NOT zone = x` holds when `zone` is
//!   unset.
//! - An empty string is set for every operator except `:*`: `user:*` is false when `user` is
//!   `""`, but `user = ""` is true.
//! - Strings compare by bytes (so `Z < a`), integers by number, and timestamps as instants
//!   (`2026-01-01T01:00:00+01:00` equals `2026-01-01T00:00:00Z`).
//! - `AND` holds when every operand holds, and `OR` when any does.
//!
//! # Limits
//!
//! A filter can be up to 4096 bytes long ([`MAX_FILTER_LEN`]), and parentheses can be nested
//! up to 32 deep ([`MAX_DEPTH`]). A filter can hold up to 16 regular expressions
//! ([`MAX_PATTERNS`]), and each compiled pattern can use at most 256 KiB. Every error gives
//! the byte offset where the problem was found, and parsing never panics.

mod ast;
mod eval;
mod parser;
#[cfg(test)]
mod tests;

pub use ast::{CompareOp, Field, Filter, Value, ValueType};
pub use eval::FieldValue;
pub use parser::{FilterError, MAX_DEPTH, MAX_FILTER_LEN, MAX_PATTERNS, parse};
