//! The whole application on one address: the HTTP API (`http`) and the gRPC services
//! (`grpc`) behind one guard — metrics, overload limits, authentication and the
//! read-only switch — with the request id and CORS outside it. The guard tells gRPC
//! calls from REST requests once per request, and renders the refusals of its steps
//! in the shape of the request's API.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::grpc;
use crate::http::error::ApiError;
use crate::http::google::error::GoogleError;
use crate::http::{self, AppState};

/// Metrics, then limits, then authentication, around every request: one middleware whose
/// steps call each other directly. As three `from_fn` layers, each boxed its future and
/// cloned the state and the inner service per request (measured with perf on a cached
/// GET, where they were most of the server's own work).
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let grpc = http::is_grpc(request.headers());
    // The error shape depends on the path; decided now, before the request moves on.
    let google = request.uri().path().starts_with(http::google::PREFIX);
    let refused = move |e: ApiError| {
        if grpc {
            grpc::status::response(&e)
        } else if google {
            GoogleError(e).into_response()
        } else {
            e.into_response()
        }
    };
    let state = &state;
    let guarded = |r| async move {
        http::limits::admit(state, r, |r| {
            http::auth::authenticate(state, r, |r: Request| async {
                if state.read_only.load(std::sync::atomic::Ordering::SeqCst) {
                    let path = r.uri().path();
                    // Every gRPC call is a POST: its method says whether it writes.
                    let writes = if grpc {
                        grpc::writes(path)
                    } else {
                        http::admin::writes(r.method(), path)
                    };
                    if writes {
                        return Err(ApiError::ReadOnly { retry_after_s: 5 });
                    }
                }
                Ok(next.run(r).await)
            })
        })
        .await
        .unwrap_or_else(refused)
    };
    // gRPC calls have their own metrics: their HTTP status is always 200.
    if grpc {
        grpc::observe::observe(&state.metrics, request, guarded).await
    } else {
        http::request_metrics::observe(&state.metrics, request, guarded).await
    }
}

/// Unknown paths: 404, or UNIMPLEMENTED for a gRPC call.
async fn fallback(headers: HeaderMap) -> Response {
    if http::is_grpc(&headers) {
        grpc::unimplemented()
    } else {
        http::system::not_found().await.into_response()
    }
}

/// The whole application: every REST route and gRPC service, guarded.
pub fn router(state: AppState) -> Router {
    let cors_origins = state.cors_allowed_origins.clone();
    let app = Router::new()
        .merge(http::nirvana::router())
        .merge(http::google::router())
        .merge(http::keys::router())
        .merge(http::admin::router())
        .merge(http::live::router())
        .route("/healthz", get(http::system::healthz))
        .route("/readyz", get(http::system::readyz))
        .route("/openapi.json", get(http::system::openapi))
        .route("/metrics", get(http::request_metrics::export))
        .route("/v1/projects", get(http::projects::projects))
        .route("/v1/operations/stats", get(http::projects::stats))
        .merge(http::console::router())
        .merge(grpc::router(state.clone()));
    // Test-only: the fault hooks exist only in a process started with them on.
    let app = if opsd_store::supervise::faults_enabled() {
        app.route(
            "/debug/faults/{worker}/{fault}",
            axum::routing::post(http::system::inject_fault),
        )
    } else {
        app
    };
    let app = app
        .fallback(fallback)
        .method_not_allowed_fallback(http::system::method_not_allowed)
        .layer(DefaultBodyLimit::max(http::extract::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    // CORS inside the request id (preflights get one too), outside everything else.
    let app = if cors_origins.is_empty() {
        app
    } else {
        app.layer(http::cors(&cors_origins))
    };
    app.layer(axum::middleware::from_fn(http::request_id::layer))
        .with_state(state)
}
