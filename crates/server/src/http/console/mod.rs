//! The operator console (`/console`) and the API docs viewer (`/docs`), served by opsd
//! itself. Pages are small server-rendered shells; the console's views are plain ES
//! modules (`assets/console/*.js`) that call the public API with the session cookie, so
//! the console can do nothing the API would not let its key do. Every page carries a
//! Content-Security-Policy that forbids inline script, and the scripts only ever put
//! operation data into the page as text.

pub mod assets;
pub(crate) mod pages;
pub mod session;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;

/// The console's and the docs' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::console))
        .route("/console/sign-in", post(session::sign_in))
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/session", get(session::whoami))
        .route("/console/assets/{name}", get(assets::console))
        .route("/docs", get(pages::docs))
        .route("/docs/assets/{name}", get(assets::docs))
}
