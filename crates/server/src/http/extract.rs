//! Strict request parsing. JSON bodies and query strings are decoded here so that every
//! mistake becomes a 400 that names the field and the rule: unknown fields, wrong types,
//! duplicate keys, repeated or unknown query parameters.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use opsd_domain::{Cursor, ListFilter, Sort, ValidationError};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Longest accepted query string (a filter is at most 4 KiB; cursors are short).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Where a list resumes: the page token sent as `field` (none or empty: the first page),
/// decoded with the scope it must have been made for, which is returned for the next
/// page's token. The scope is the filter and the sort: a token is only valid for the
/// list it came from, whatever the page size.
pub fn resume_list(
    field: &str,
    token: Option<&str>,
    filter: &ListFilter,
    sort: &Sort,
) -> Result<(String, Option<Cursor>), ValidationError> {
    let scope = format!("{}|{}", filter.canonical(), sort.canonical());
    let cursor = token
        .filter(|t| !t.is_empty())
        .map(|t| Cursor::decode_for(field, t, &scope, sort))
        .transpose()?;
    Ok((scope, cursor))
}

/// A JSON body decoded into `T`, whose errors carry the JSON path of the bad field.
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        // A missing content type is tolerated (curl without -H); a wrong one is not.
        if json_type == Some(false) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::Invalid(ValidationError::new("body", rejection.body_text()))
            }
        })?;
        parse_json(&bytes).map(ValidJson)
    }
}

/// Decodes `bytes` as `T`, turning serde's error into one that names the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also accept an array for a struct (as a tuple); the API takes objects.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ValidationError::new("body", "must be a JSON object").into());
    }
    // Syntax first, over the whole body: otherwise a missing field would be reported for
    // a body that is not even JSON (`{"a": 1} trailing`).
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ValidationError::new("body", e.to_string()).into());
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let full = inner.to_string();
        // The syntax is valid by now: the position adds nothing to a type error.
        let message = full.split(" at line ").next().unwrap_or(&full).to_owned();
        // serde puts the name of an unknown or repeated struct field into the path, except
        // at the top level; a missing field or a repeated map key is reported against its
        // parent. Either way the name is in the message.
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|m| m.split('`').next())
        };
        let own = named("unknown field `");
        let child = named("missing field `")
            .or_else(|| named("duplicate field `"))
            .or_else(|| named("duplicate key `"));
        let field = match (path.as_str(), own.or(child)) {
            (".", Some(name)) => name.to_owned(),
            (".", None) => "body".to_owned(),
            (_, Some(name)) if child.is_some() => format!("{path}.{name}"),
            _ => path,
        };
        ApiError::Invalid(ValidationError::new(field, message))
    })?;
    Ok(value)
}

/// A single path parameter as axum decoded it, or why it could not.
pub type RawPath = Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>;

/// Reads a UUID path parameter; anything else (not a UUID, not even UTF-8) is a 400 on
/// `field` in the JSON error shape, not axum's plain-text rejection.
pub fn uuid_param(path: RawPath, field: &str) -> Result<uuid::Uuid, ApiError> {
    path.ok()
        .and_then(|p| uuid::Uuid::parse_str(&p.0).ok())
        .ok_or_else(|| ValidationError::new(field, "must be a UUID").into())
}

/// For endpoints that take no query parameters: any parameter is refused (400), so a
/// misspelt or misplaced one never passes silently.
pub struct NoQuery;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        QueryParams::parse(parts.uri.query(), &[]).map(|_| NoQuery)
    }
}

/// A query string checked against the parameters an endpoint accepts: each at most
/// once, none unknown. Values are read by name and parsed by the handler.
#[derive(Debug, Default)]
pub struct QueryParams(BTreeMap<String, String>);

impl QueryParams {
    /// Parses `raw` (the part after `?`), accepting only names in `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let raw_len = raw.map_or(0, str::len);
        if raw_len > MAX_QUERY_BYTES {
            return Err(ValidationError::new(
                "query",
                format!("must be at most {MAX_QUERY_BYTES} bytes"),
            )
            .into());
        }
        let mut map = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                let accepted = if allowed.is_empty() {
                    "this endpoint takes no query parameters".to_owned()
                } else {
                    format!("accepted: {}", allowed.join(", "))
                };
                return Err(ValidationError::new(
                    name.as_ref(),
                    format!("unknown query parameter; {accepted}"),
                )
                .into());
            }
            if map.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(ValidationError::new(name.as_ref(), "may be given only once").into());
            }
        }
        Ok(Self(map))
    }

    /// The raw value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Parses `name` with `parse`; `rule` says what was expected when it fails.
    pub fn parse_with<T>(
        &self,
        name: &str,
        rule: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| parse(v).ok_or_else(|| ValidationError::new(name, rule).into()))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        name: Option<String>,
    }

    fn field_of(json: &str) -> String {
        match parse_json::<Outer>(json.as_bytes()) {
            Err(ApiError::Invalid(v)) => v.field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(field_of(r#"{"inner": {"n": 300}}"#), "inner.n");
        assert_eq!(field_of(r#"{"inner": {"n": 1, "x": 2}}"#), "inner.x");
        assert_eq!(field_of(r#"{"inner": {"n": 1}, "bogus": 1}"#), "bogus");
        assert_eq!(field_of(r#"{"inner": {"n": 1}, "name": 5}"#), "name");
        assert_eq!(
            field_of(r#"{"inner": {"n": 1}, "name": "a", "name": "b"}"#),
            "name"
        );
        assert_eq!(field_of(""), "body");
        assert_eq!(
            field_of(r#"{"inner": {"n": 1}, "name": "a", "name": "a"}"#),
            "name"
        );
        assert_eq!(field_of("[1"), "body");
    }

    #[test]
    fn query_rejects_unknown_and_repeated() {
        let allowed = ["a", "b"];
        assert!(QueryParams::parse(Some("a=1&b=2"), &allowed).is_ok());
        assert!(
            matches!(QueryParams::parse(Some("c=1"), &allowed), Err(ApiError::Invalid(v)) if v.field == "c")
        );
        assert!(
            matches!(QueryParams::parse(Some("a=1&a=2"), &allowed), Err(ApiError::Invalid(v)) if v.field == "a")
        );
    }
}
