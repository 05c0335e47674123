//! Operating endpoints: liveness, readiness, the OpenAPI document and a docs page built
//! from it (served from the binary: no CDN, works offline).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;

use super::AppState;
use super::error::ApiError;

/// The OpenAPI description, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "opsd",
        description = "Operations service for cloud control planes."
    ),
    paths(
        super::nirvana::operations::get,
        super::nirvana::operations::list,
        super::nirvana::producer::create,
        super::nirvana::producer::update,
        super::nirvana::producer::events,
        super::nirvana::producer::cancel,
        super::google::operations::get,
        super::google::operations::list,
        super::google::operations::wait,
        super::keys::create,
        super::keys::list,
        super::keys::revoke,
        super::live::wait::wait,
        super::live::watch::watch,
        super::live::leases::claim,
        super::live::leases::heartbeat,
        healthz,
        readyz,
        super::metrics::export,
    )
)]
pub struct ApiDoc;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "system", responses((status = 200), (status = 503)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// `GET /docs`: every endpoint with its summary, parameters and responses.
pub async fn docs() -> Html<String> {
    let api = ApiDoc::openapi();
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
