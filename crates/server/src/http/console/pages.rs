//! The HTML shells. They hold no operation data (the scripts fetch it and render it as
//! text), only the signed-in key's CSRF token, and they forbid inline script.

use std::sync::Arc;

use axum::Extension;
use axum::extract::RawQuery;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use opsd_domain::Principal;
use opsd_store::sessions::csrf_token;

use super::session::Current;

/// The console's policy: scripts and styles only from our own files.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";
/// Swagger UI sets inline styles (syntax highlighting), so styles may be inline here;
/// scripts still may not.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

fn page(status: StatusCode, csp: &'static str, html: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(csp),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // `same-origin`, not `no-referrer`: with no-referrer Chromium sends `Origin: null`
            // on our own form posts, and the sign-in form needs a real Origin.
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Html(html),
    )
        .into_response()
}

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn csrf_of(current: Option<&Extension<Current>>) -> String {
    current.map(|c| csrf_token(&c.0.0)).unwrap_or_default()
}

/// The sign-in form, with an optional error; `next` is where to go afterwards.
pub fn sign_in(status: StatusCode, error: Option<&str>, next: &str) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        status,
        CONSOLE_CSP,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"icon\" href=\"data:,\">\
             <title>Sign in · opsd</title><link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
             </head><body class=\"sign-in\"><main><h1>opsd console</h1>\
             <form method=\"post\" action=\"/console/sign-in\">\
             <label for=\"key\">API key</label>\
             <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" autofocus required \
             placeholder=\"opsd_…\">\
             <input type=\"hidden\" name=\"next\" value=\"{}\">\
             <button type=\"submit\">Sign in</button>{error}</form>\
             <p class=\"hint\">The key is exchanged for a session cookie (12 hours); it is not \
             kept by the browser. The first start of opsd writes the admin key to \
             <code>data/admin.key</code>.</p></main></body></html>",
            escape(next)
        ),
    )
}

/// `GET /console`: the console for a signed-in browser, else the sign-in form.
pub async fn console(
    principal: Option<Extension<Arc<Principal>>>,
    current: Option<Extension<Current>>,
    RawQuery(query): RawQuery,
) -> Response {
    if principal.is_none() {
        let next = query
            .as_deref()
            .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "next"))
            .map(|(_, v)| v.into_owned());
        let next = if next.as_deref() == Some("/docs") {
            "/docs"
        } else {
            "/console"
        };
        return sign_in(StatusCode::OK, None, next);
    }
    page(
        StatusCode::OK,
        CONSOLE_CSP,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"icon\" href=\"data:,\">\
             <meta name=\"csrf-token\" content=\"{}\">\
             <title>opsd console</title><link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
             <script type=\"module\" src=\"/console/assets/app.js\"></script></head>\
             <body><header class=\"top\"><a class=\"brand\" href=\"#/\">opsd</a>\
             <label class=\"picker\">Project <select id=\"project\"></select></label>\
             <nav><a id=\"nav-ops\" href=\"#/\">Operations</a>\
             <a id=\"nav-attention\" href=\"#/attention\">Needs attention</a>\
             <a id=\"nav-picture\" href=\"#/picture\">Picture</a>\
             <a href=\"/docs\">API docs</a></nav>\
             <span id=\"whoami\" class=\"whoami\"></span>\
             <button id=\"sign-out\" type=\"button\">Sign out</button></header>\
             <main id=\"view\"><p class=\"muted\">Loading…</p></main></body></html>",
            escape(&csrf_of(current.as_ref()))
        ),
    )
}

/// `GET /docs`: Swagger UI over `/openapi.json` for a signed-in browser (its "Try it
/// out" requests go to this server with the session), else the sign-in form first.
#[utoipa::path(
    get, path = "/docs", tag = "system", operation_id = "getDocs",
    responses(
        (status = 200, description = "Swagger UI over this document (signed in with a console session)", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the console's sign-in form, which returns here"),
    )
)]
pub async fn docs(
    principal: Option<Extension<Arc<Principal>>>,
    current: Option<Extension<Current>>,
) -> Response {
    if principal.is_none() {
        return Redirect::to("/console?next=/docs").into_response();
    }
    page(
        StatusCode::OK,
        DOCS_CSP,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"icon\" href=\"data:,\">\
             <meta name=\"csrf-token\" content=\"{}\">\
             <title>opsd API</title>\
             <link rel=\"stylesheet\" href=\"/docs/assets/swagger-ui.css\">\
             <link rel=\"stylesheet\" href=\"/docs/assets/docs.css\">\
             <script src=\"/docs/assets/swagger-ui-bundle.js\" defer></script>\
             <script src=\"/docs/assets/docs.js\" defer></script></head>\
             <body><header class=\"docs-top\"><a href=\"/console\">← console</a> \
             <span>opsd API — requests made here use your console session</span></header>\
             <div id=\"swagger-ui\"></div></body></html>",
            escape(&csrf_of(current.as_ref()))
        ),
    )
}
