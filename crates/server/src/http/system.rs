//! Operating endpoints: liveness, readiness, the OpenAPI document and a docs page built
//! from it (served from the binary: no CDN, works offline).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::path::Operation;

use super::AppState;
use super::error::ApiError;
use super::openapi::document;

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/healthz", tag = "system", operation_id = "healthz",
    responses((status = 200, description = "The process answers", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers.
#[utoipa::path(
    get, path = "/readyz", tag = "system", operation_id = "readyz",
    responses(
        (status = 200, description = "The store answers", body = String, content_type = "text/plain"),
        (status = 503, description = "The store does not answer", body = String, content_type = "text/plain"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get, path = "/openapi.json", tag = "system", operation_id = "getOpenApi",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub async fn openapi() -> impl IntoResponse {
    Json(document())
}

/// Every endpoint with its summary, parameters and responses, as HTML.
#[utoipa::path(
    get, path = "/docs", tag = "system", operation_id = "getDocs",
    responses((status = 200, description = "An HTML page built from this document", body = String, content_type = "text/html"))
)]
pub async fn docs() -> Html<String> {
    let api = document();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>opsd API</title><style>\
         body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         code{background:#f3f3f3;padding:0 .2rem}.m{font-weight:bold;display:inline-block;width:4.5rem}\
         section{border-top:1px solid #ddd;padding:.5rem 0}</style></head><body><h1>opsd API</h1>\
         <p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>.</p>",
    );
    for (path, item) in &api.paths.paths {
        let methods: [(&str, &Option<Operation>); 5] = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in methods {
            let Some(op) = op else { continue };
            html.push_str(&format!(
                "<section><p><span class=\"m\">{method}</span><code>{}</code></p><p>{}</p>",
                escape(path),
                escape(op.summary.as_deref().unwrap_or(""))
            ));
            if let Some(params) = &op.parameters {
                html.push_str("<ul>");
                for p in params {
                    html.push_str(&format!(
                        "<li><code>{}</code> ({}) {}</li>",
                        escape(&p.name),
                        serde_json::to_string(&p.parameter_in)
                            .unwrap_or_default()
                            .trim_matches('"'),
                        escape(p.description.as_deref().unwrap_or(""))
                    ));
                }
                html.push_str("</ul>");
            }
            let codes: Vec<_> = op.responses.responses.keys().map(|c| escape(c)).collect();
            html.push_str(&format!("<p>Responses: {}</p></section>", codes.join(", ")));
        }
    }
    html.push_str("</body></html>");
    Html(html)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Fallback for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// Fallback for known paths with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
