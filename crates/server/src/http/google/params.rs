//! Google's standard query parameters and how answers are written: `alt` (JSON only),
//! `prettyPrint` (default true, as Google's servers do), `fields` (partial responses).
//! `key`, `access_token`, `oauth_token`, `quotaUser`, `$.xgafv`, `uploadType` and
//! `upload_protocol` are accepted; credentials are checked by the security layer.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opsd_domain::ValidationError;
use serde::Serialize;

use super::error::GoogleError;
use super::fields::Selection;
use crate::http::extract::QueryParams;

/// Parameters every Google method accepts.
pub const STANDARD_PARAMS: &[&str] = &[
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "uploadType",
    "upload_protocol",
    "header.bypassBillingFilter",
];

/// A 200 answer with a JSON body already written.
pub fn respond(text: impl Into<Body>) -> Response {
    let mut response = (StatusCode::OK, text.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// How the standard parameters ask an answer to be written.
pub struct Layout {
    pretty: bool,
    fields: Option<Selection>,
}

impl Layout {
    /// Reads `alt`, `callback`, `prettyPrint` and `fields`, refusing what is not served.
    pub fn of(q: &QueryParams) -> Result<Self, GoogleError> {
        if let Some(alt) = q.get("alt")
            && alt != "json"
        {
            return Err(ValidationError::new("alt", "only 'json' is supported").into());
        }
        if q.get("callback").is_some() {
            return Err(ValidationError::new("callback", "JSONP is not supported").into());
        }
        let pretty = q
            .parse_with("prettyPrint", "must be true or false", |v| match v {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            })?
            .unwrap_or(true);
        // An empty mask selects nothing away: the whole answer, as without one.
        let fields = q
            .get("fields")
            .filter(|mask| !mask.is_empty())
            .map(Selection::parse)
            .transpose()
            .map_err(|e| ValidationError::new("fields", e))?;
        Ok(Self { pretty, fields })
    }

    /// The name of this layout of a body whose links start with `base`, for the read
    /// cache; `None` for a partial response (`fields`), which is not kept: selections are
    /// rare and each would be an entry of its own.
    pub fn cache_name(&self, base: &str) -> Option<String> {
        self.fields
            .is_none()
            .then(|| format!("{base} pretty={}", self.pretty))
    }

    /// `body` written in this layout.
    pub fn text(&self, body: &impl Serialize) -> Result<String, GoogleError> {
        let internal = |e: serde_json::Error| crate::http::error::ApiError::Internal(e.to_string());
        let mut value = serde_json::to_value(body).map_err(internal)?;
        if let Some(selection) = &self.fields {
            value = selection.apply(value);
        }
        let text = if self.pretty {
            serde_json::to_string_pretty(&value)
        } else {
            serde_json::to_string(&value)
        };
        Ok(text.map_err(internal)?)
    }
}

/// The host the client addressed (`Host`, or HTTP/2's `:authority`), for `selfLink`.
/// Only that is copied out of the request (an extracted `HeaderMap` copies every header).
pub struct ClientHost(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for ClientHost {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            let authority = parts.uri.authority()?;
            HeaderValue::from_str(authority.as_str()).ok()
        });
        Ok(ClientHost(host))
    }
}

impl ClientHost {
    /// Scheme and host the client used; `localhost` when it named none usable.
    pub fn base_url(&self, scheme: &str) -> String {
        let host = self
            .0
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost");
        format!("{scheme}://{host}")
    }
}
