//! `/deploymentmanager/v2/projects/{project}/global/operations…`: Google Cloud Deployment
//! Manager's `operations` resource, wire-compatible so that Google's client libraries work
//! by changing only the endpoint. Read `models` (the representation), `operations` (the
//! methods), `params` and `fields` (standard parameters, partial responses), `error`
//! (Google's error shape, used for everything under this prefix).

pub mod error;
pub mod fields;
pub mod models;
pub mod operations;
pub mod params;

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use crate::http::error::ApiError;
use error::GoogleError;

/// The path prefix of this dialect.
pub const PREFIX: &str = "/deploymentmanager/v2";

/// Routes under [`PREFIX`], with Google-shaped 404s and 405s.
pub fn router() -> Router<AppState> {
    let routes = Router::new()
        .route(
            "/projects/{project}/global/operations",
            get(operations::list),
        )
        .route(
            "/projects/{project}/global/operations/{operation}",
            get(operations::get),
        )
        .route(
            "/projects/{project}/global/operations/{operation}/wait",
            post(operations::wait),
        )
        .fallback(|| async { GoogleError(ApiError::NotFound("no such endpoint".into())) })
        .method_not_allowed_fallback(|| async { GoogleError(ApiError::MethodNotAllowed) });
    Router::new().nest(PREFIX, routes)
}
