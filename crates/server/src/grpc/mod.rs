//! gRPC on the HTTP API's address: `google.longrunning.Operations` over the same store,
//! with the gRPC health and reflection services. gRPC requests are told apart by their
//! `content-type: application/grpc…` (`http::is_grpc`); they go through the same guard as
//! REST requests (`crate::app`: authentication with the same keys, rate limits,
//! concurrency caps), whose refusals are rendered as gRPC statuses here (`status`). Read in this order: `convert` (an
//! operation as a message), `status` (errors as statuses), `operations` (the methods),
//! `observe` (metrics, log lines, deadlines).

pub mod convert;
pub mod observe;
pub mod operations;
pub mod status;

use axum::Router;
use axum::response::Response;
use futures_util::FutureExt;
use opsd_grpc_proto::google::longrunning::operations_server::OperationsServer;

use crate::http::AppState;
use crate::http::extract::MAX_BODY_BYTES;

/// Whether a gRPC call changes the store (refused in read-only mode): only
/// `CancelOperation` and `DeleteOperation`; gets, lists, waits, health and reflection read.
pub fn writes(path: &str) -> bool {
    path == "/google.longrunning.Operations/CancelOperation"
        || path == "/google.longrunning.Operations/DeleteOperation"
}

/// The gRPC services, as routes of the HTTP router.
pub fn router(state: AppState) -> Router<AppState> {
    let operations = OperationsServer::new(operations::OperationsService { state })
        // The same limit as HTTP bodies; a larger message is RESOURCE_EXHAUSTED.
        .max_decoding_message_size(MAX_BODY_BYTES);
    let (reporter, health) = tonic_health::server::health_reporter();
    // An uncontended lock: the future is ready at once.
    let _ = reporter
        .set_serving::<OperationsServer<operations::OperationsService>>()
        .now_or_never();
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(opsd_grpc_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut router = Router::new()
        .route_service("/google.longrunning.Operations/{*method}", operations)
        .route_service("/grpc.health.v1.Health/{*method}", health);
    // The descriptor sets are compiled in; building from them cannot fail at run time
    // unless the build is broken, which the tests would show.
    match reflection().build_v1() {
        Ok(v1) => {
            router = router.route_service("/grpc.reflection.v1.ServerReflection/{*method}", v1)
        }
        Err(e) => tracing::error!(error = %e, "gRPC reflection (v1) is off"),
    }
    match reflection().build_v1alpha() {
        Ok(v1alpha) => {
            router = router.route_service(
                "/grpc.reflection.v1alpha.ServerReflection/{*method}",
                v1alpha,
            );
        }
        Err(e) => tracing::error!(error = %e, "gRPC reflection (v1alpha) is off"),
    }
    router
}

/// The answer to a gRPC call of a service this server does not have.
pub fn unimplemented() -> Response {
    tonic::Status::unimplemented("no such gRPC service on this server").into_http()
}
