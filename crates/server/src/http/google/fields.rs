//! Google partial responses: `fields=operations(name,status),nextPageToken` keeps only the
//! selected parts of the JSON answer. Grammar: a comma-separated list of selectors; a
//! selector is a `/`-separated path, optionally followed by `(sub-selectors)` that apply
//! to the object (or to each element of the array) it names; `*` selects everything at
//! its level. A selected field without sub-selectors is kept whole.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A parsed selection: field name → what to keep inside it (`None`: all of it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selection(BTreeMap<String, Option<Selection>>);

impl Selection {
    /// Parses a `fields` value; the error says where it broke.
    pub fn parse(s: &str) -> Result<Selection, String> {
        let chars: Vec<char> = s.chars().collect();
        let mut pos = 0;
        let sel = parse_list(&chars, &mut pos, 0)?;
        if pos != chars.len() {
            return Err(format!("unexpected '{}' at position {pos}", chars[pos]));
        }
        Ok(sel)
    }

    /// Keeps only the selected parts of `v`.
    pub fn apply(&self, v: Value) -> Value {
        if self.0.contains_key("*") {
            return v;
        }
        match v {
            Value::Object(map) => {
                let mut kept = Map::new();
                for (key, value) in map {
                    match self.0.get(&key) {
                        Some(None) => {
                            kept.insert(key, value);
                        }
                        Some(Some(sub)) => {
                            kept.insert(key, sub.apply(value));
                        }
                        None => {}
                    }
                }
                Value::Object(kept)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(|i| self.apply(i)).collect()),
            other => other,
        }
    }

    fn merge(&mut self, path: &[String], sub: Option<Selection>) {
        let Some((head, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            match (self.0.get_mut(head), sub) {
                // Selecting the whole field wins over any partial selection of it.
                (Some(slot), None) => *slot = None,
                (Some(Some(existing)), Some(sub)) => existing.0.extend(sub.0),
                (Some(None), Some(_)) => {}
                (None, sub) => {
                    self.0.insert(head.clone(), sub);
                }
            }
            return;
        }
        let slot = self
            .0
            .entry(head.clone())
            .or_insert_with(|| Some(Selection::default()));
        if let Some(inner) = slot {
            inner.merge(rest, sub);
        }
    }
}

const MAX_DEPTH: usize = 16;

fn parse_list(chars: &[char], pos: &mut usize, depth: usize) -> Result<Selection, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} at position {pos}"));
    }
    let mut sel = Selection::default();
    loop {
        let mut path = vec![parse_name(chars, pos)?];
        while chars.get(*pos) == Some(&'/') {
            *pos += 1;
            path.push(parse_name(chars, pos)?);
            // `a/b/c` nests as deep as `a(b(c))`: the same limit applies.
            if depth + path.len() > MAX_DEPTH {
                return Err(format!("nested deeper than {MAX_DEPTH} at position {pos}"));
            }
        }
        let sub = if chars.get(*pos) == Some(&'(') {
            *pos += 1;
            let sub = parse_list(chars, pos, depth + 1)?;
            if chars.get(*pos) != Some(&')') {
                return Err(format!("expected ')' at position {pos}"));
            }
            *pos += 1;
            Some(sub)
        } else {
            None
        };
        sel.merge(&path, sub);
        if chars.get(*pos) == Some(&',') {
            *pos += 1;
        } else {
            return Ok(sel);
        }
    }
}

fn parse_name(chars: &[char], pos: &mut usize) -> Result<String, String> {
    while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
        *pos += 1;
    }
    let start = *pos;
    while chars
        .get(*pos)
        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '*' | '.' | '-'))
    {
        *pos += 1;
    }
    if start == *pos {
        return Err(format!("expected a field name at position {start}"));
    }
    let name: String = chars[start..*pos].iter().collect();
    while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
        *pos += 1;
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply(fields: &str, v: Value) -> Value {
        Selection::parse(fields).unwrap().apply(v)
    }

    #[test]
    fn selects_nested_fields_in_arrays() {
        let v = json!({"operations": [{"name": "a", "status": "DONE", "id": "1"}], "nextPageToken": "t", "kind": "x"});
        assert_eq!(
            apply("operations(name,status),nextPageToken", v),
            json!({"operations": [{"name": "a", "status": "DONE"}], "nextPageToken": "t"})
        );
    }

    #[test]
    fn paths_wildcards_and_whole_fields() {
        let v = json!({"error": {"errors": [{"code": "c", "message": "m"}]}, "name": "n"});
        assert_eq!(
            apply("error/errors/code", v.clone()),
            json!({"error": {"errors": [{"code": "c"}]}})
        );
        assert_eq!(apply("*", v.clone()), v);
        assert_eq!(
            apply("error,error/errors/code", v.clone()),
            json!({"error": v["error"]})
        );
        assert_eq!(apply("missing", v), json!({}));
    }

    #[test]
    fn malformed_masks_say_where() {
        assert_eq!(
            Selection::parse("a(b").unwrap_err(),
            "expected ')' at position 3"
        );
        assert_eq!(
            Selection::parse("a,,b").unwrap_err(),
            "expected a field name at position 2"
        );
        assert_eq!(
            Selection::parse("a)b").unwrap_err(),
            "unexpected ')' at position 1"
        );
        assert!(Selection::parse(&"a(".repeat(100)).is_err());
        assert!(Selection::parse("").is_err());
    }
}
