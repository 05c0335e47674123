//! Limits and character sets for everything a producer sends. Each check names the
//! field and the rule, so a 400 tells the caller exactly what to fix.

use crate::ValidationError;
use crate::operation::{Details, DiffValue, OperationError, Warning};

// The limits live in `limits` (which imports nothing, so that `operation` can name them
// in its schema without importing this module, which checks `operation`'s types).
pub use crate::limits::*;

type Result<T = ()> = std::result::Result<T, ValidationError>;

/// Project ids: 1–128 of `[A-Za-z0-9._-]`, starting with a letter or digit (so that no
/// project id is a `.` or `..` path segment on the Google paths, where it is one).
pub fn project_id(field: &str, value: &str) -> Result {
    id_chars(
        field,
        value,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
        "[A-Za-z0-9._-]",
    )?;
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(ValidationError::new(
            field,
            "must start with a letter or a digit",
        ));
    }
    Ok(())
}

/// Resource ids: 1–128 of `[A-Za-z0-9._:/-]` (resource ids are sometimes paths).
pub fn resource_id(field: &str, value: &str) -> Result {
    id_chars(
        field,
        value,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'),
        "[A-Za-z0-9._:/-]",
    )
}

/// Idempotency keys: 1–128 printable ASCII characters, no spaces.
pub fn request_id(field: &str, value: &str) -> Result {
    id_chars(
        field,
        value,
        |c| c.is_ascii_graphic(),
        "printable ASCII without spaces",
    )
}

/// Lease tokens as sent back by workers: 1–128 characters (opsd's are 64 hex digits);
/// anything else cannot be a token, so it is a 400 rather than a lease mismatch.
pub fn lease_token(field: &str, value: &str) -> Result {
    if value.is_empty() || value.chars().count() > MAX_ID_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    Ok(())
}

/// Worker names (leases): 1–128 of `[A-Za-z0-9._:/@-]`, e.g. `host-3:4711`.
pub fn worker(field: &str, value: &str) -> Result {
    id_chars(
        field,
        value,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@'),
        "[A-Za-z0-9._:/@-]",
    )
}

fn id_chars(field: &str, value: &str, ok: impl Fn(char) -> bool, set: &str) -> Result {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    if !value.chars().all(ok) {
        return Err(ValidationError::new(
            field,
            format!("may only contain {set}"),
        ));
    }
    Ok(())
}

/// Free text of at most `max` characters (Unicode code points, as JSON Schema's
/// `maxLength` counts them), without control characters other than newline and tab.
pub fn text(field: &str, value: &str, max: usize) -> Result {
    if value.len() > max && value.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Optional free text.
pub fn opt_text(field: &str, value: Option<&str>, max: usize) -> Result {
    value.map_or(Ok(()), |v| text(field, v, max))
}

/// `details.changes`: bounded entry count, key length and array sizes.
pub fn details(d: &Details) -> Result {
    if d.changes.len() > MAX_CHANGES {
        return Err(ValidationError::new(
            "details.changes",
            format!("must have at most {MAX_CHANGES} entries"),
        ));
    }
    for (key, diff) in &d.changes {
        let base = format!("details.changes.{key}");
        if key.is_empty() {
            return Err(ValidationError::new(
                "details.changes",
                "field names must not be empty",
            ));
        }
        text(&base, key, MAX_LABEL_LEN)?;
        for (side, v) in [("from", &diff.from), ("to", &diff.to)] {
            let field = format!("{base}.{side}");
            match v {
                DiffValue::String(s) => text(&field, s, MAX_TEXT_LEN)?,
                DiffValue::Strings(items) => {
                    if items.len() > MAX_ARRAY_ITEMS {
                        return Err(ValidationError::new(
                            field,
                            format!("must have at most {MAX_ARRAY_ITEMS} items"),
                        ));
                    }
                    for (i, s) in items.iter().enumerate() {
                        text(&format!("{field}[{i}]"), s, MAX_TEXT_LEN)?;
                    }
                }
                DiffValue::Bool(_) | DiffValue::Number(_) => {}
            }
        }
    }
    Ok(())
}

/// `error`: 1–100 items, each with a code and a message.
pub fn operation_error(e: &OperationError) -> Result {
    if e.errors.is_empty() || e.errors.len() > MAX_LIST_ITEMS {
        return Err(ValidationError::new(
            "error.errors",
            format!("must have 1 to {MAX_LIST_ITEMS} items"),
        ));
    }
    for (i, item) in e.errors.iter().enumerate() {
        let f = format!("error.errors[{i}]");
        non_empty_label(&format!("{f}.code"), &item.code)?;
        text(&format!("{f}.message"), &item.message, MAX_TEXT_LEN)?;
        opt_text(
            &format!("{f}.location"),
            item.location.as_deref(),
            MAX_LABEL_LEN,
        )?;
    }
    Ok(())
}

/// `warnings` of one request: at most 100, each with a code, a message and ≤ 100 data pairs.
pub fn warnings(ws: &[Warning]) -> Result {
    if ws.len() > MAX_LIST_ITEMS {
        return Err(ValidationError::new(
            "warnings",
            format!("must have at most {MAX_LIST_ITEMS} items"),
        ));
    }
    for (i, w) in ws.iter().enumerate() {
        let f = format!("warnings[{i}]");
        non_empty_label(&format!("{f}.code"), &w.code)?;
        text(&format!("{f}.message"), &w.message, MAX_TEXT_LEN)?;
        if w.data.len() > MAX_LIST_ITEMS {
            return Err(ValidationError::new(
                format!("{f}.data"),
                format!("must have at most {MAX_LIST_ITEMS} items"),
            ));
        }
        for (j, d) in w.data.iter().enumerate() {
            text(&format!("{f}.data[{j}].key"), &d.key, MAX_LABEL_LEN)?;
            text(&format!("{f}.data[{j}].value"), &d.value, MAX_TEXT_LEN)?;
        }
    }
    Ok(())
}

fn non_empty_label(field: &str, value: &str) -> Result {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    text(field, value, MAX_LABEL_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids() {
        assert!(project_id("project_id", "proj-1.a_b").is_ok());
        assert_eq!(
            project_id("project_id", "").unwrap_err().field,
            "project_id"
        );
        assert!(project_id("project_id", &"a".repeat(128)).is_ok());
        assert!(project_id("project_id", &"a".repeat(129)).is_err());
        assert!(project_id("project_id", "a b").is_err());
        assert!(project_id("project_id", "a/b").is_err());
        assert!(project_id("project_id", "é").is_err());
        assert!(project_id("project_id", ".").is_err());
        assert!(project_id("project_id", "..").is_err());
        assert!(project_id("project_id", "-a").is_err());
        assert!(project_id("project_id", "a.").is_ok());
    }

    #[test]
    fn resource_ids_allow_paths() {
        assert!(resource_id("resource_id", "vms/vm-1:a").is_ok());
        assert!(resource_id("resource_id", "vm 1").is_err());
    }

    #[test]
    fn text_limits() {
        assert!(text("m", &"x".repeat(MAX_TEXT_LEN), MAX_TEXT_LEN).is_ok());
        assert!(text("m", &"x".repeat(MAX_TEXT_LEN + 1), MAX_TEXT_LEN).is_err());
        assert!(text("m", "line\nnext\ttab", MAX_TEXT_LEN).is_ok());
        assert!(text("m", "bell\u{7}", MAX_TEXT_LEN).is_err());
        // Characters, not bytes: 4,096 two-byte characters are within the limit.
        assert!(text("m", &"é".repeat(MAX_TEXT_LEN), MAX_TEXT_LEN).is_ok());
        assert!(text("m", &"é".repeat(MAX_TEXT_LEN + 1), MAX_TEXT_LEN).is_err());
    }

    #[test]
    fn details_limits_name_the_field() {
        let mut d = Details::default();
        d.changes.insert(
            "tags".into(),
            crate::FieldDiff {
                from: DiffValue::Strings(vec![]),
                to: DiffValue::Strings(vec!["x".into(); MAX_ARRAY_ITEMS + 1]),
            },
        );
        let e = details(&d).unwrap_err();
        assert_eq!(e.field, "details.changes.tags.to");
    }

    #[test]
    fn empty_error_list_is_refused() {
        let e = operation_error(&OperationError { errors: vec![] }).unwrap_err();
        assert_eq!(e.field, "error.errors");
    }
}
