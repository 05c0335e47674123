//! The console's and the docs viewer's static files, embedded in the binary at build
//! time: nothing is fetched from a CDN, nothing needs Node to build or run. The vendored
//! Swagger UI files are the unmodified `swagger-ui-dist` npm release (see
//! `assets/vendor/swagger-ui-dist/VENDORED.md`).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

/// (name, content type, bytes) of the console's files.
const CONSOLE: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        CSS,
        include_bytes!("../../../assets/console/console.css"),
    ),
    (
        "app.js",
        JS,
        include_bytes!("../../../assets/console/app.js"),
    ),
    (
        "api.js",
        JS,
        include_bytes!("../../../assets/console/api.js"),
    ),
    (
        "dom.js",
        JS,
        include_bytes!("../../../assets/console/dom.js"),
    ),
    (
        "operations.js",
        JS,
        include_bytes!("../../../assets/console/operations.js"),
    ),
    (
        "operation.js",
        JS,
        include_bytes!("../../../assets/console/operation.js"),
    ),
    (
        "attention.js",
        JS,
        include_bytes!("../../../assets/console/attention.js"),
    ),
    (
        "picture.js",
        JS,
        include_bytes!("../../../assets/console/picture.js"),
    ),
];

/// (name, content type, bytes) of the docs viewer's files.
const DOCS: &[(&str, &str, &[u8])] = &[
    (
        "docs.js",
        JS,
        include_bytes!("../../../assets/console/docs.js"),
    ),
    (
        "docs.css",
        CSS,
        include_bytes!("../../../assets/console/docs.css"),
    ),
    (
        "swagger-ui-bundle.js",
        JS,
        include_bytes!("../../../assets/vendor/swagger-ui-dist/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        CSS,
        include_bytes!("../../../assets/vendor/swagger-ui-dist/swagger-ui.css"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

fn serve(table: &'static [(&'static str, &'static str, &'static [u8])], name: &str) -> Response {
    let Some((_, content_type, bytes)) = table.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::NotFound(format!("no asset named {name}")).into_response();
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // Assets change only with the binary; a short cache keeps upgrades visible.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        *bytes,
    )
        .into_response()
}

/// `GET /console/assets/{name}`.
pub async fn console(Path(name): Path<String>) -> Response {
    serve(CONSOLE, &name)
}

/// `GET /docs/assets/{name}`.
pub async fn docs(Path(name): Path<String>) -> Response {
    serve(DOCS, &name)
}
