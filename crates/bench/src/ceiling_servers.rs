//! The ceiling servers the read scenarios are divided by, measured in the same run, each
//! a process of this binary on the server core (`Server::ceiling`,
//! `Server::ceiling_grpc`) that prints where it listens as opsd does:
//!
//! - **HTTP** (`opsd-bench ceiling-http`): a minimal axum server that answers every
//!   request with a fixed body — the very bytes opsd answered for the scenario — so the
//!   ratio isolates what opsd does beyond HTTP.
//! - **gRPC** (`opsd-bench ceiling-grpc`): a tonic service that answers every
//!   GetOperation with the very message opsd answered, served by hyper's HTTP/2 like
//!   opsd (`grpc`).

use std::future::Future;
use std::path::Path;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use opsd_grpc_proto::google::longrunning::operations_server::{Operations, OperationsServer};
use opsd_grpc_proto::google::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, GetOperationRequest, ListOperationsRequest,
    ListOperationsResponse, Operation, WaitOperationRequest,
};
use prost::Message;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// Runs `serve` on a listener on an OS-chosen loopback port, after printing the
/// `… listening on http://ADDR` line `Server` waits for. The runtime is the one opsd's
/// binary builds: tokio's default multi-thread runtime, which sizes itself to the CPUs
/// this process is pinned to.
fn serve_on_loopback<F, Fut>(serve: F) -> Result<(), String>
where
    F: FnOnce(TcpListener) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("ceiling listening on http://{addr}");
        serve(listener).await
    })
}

/// `opsd-bench ceiling-http`: serve `body_file` to every request until killed.
pub fn serve_http(body_file: &Path) -> Result<(), String> {
    let body = Bytes::from(std::fs::read(body_file).map_err(|e| e.to_string())?);
    serve_on_loopback(|listener| async move {
        let app = Router::new().fallback(move || {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "application/json")], body) }
        });
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}

/// `opsd-bench ceiling-grpc`: answer every GetOperation with the message in `body_file`.
pub fn serve_grpc(body_file: &Path) -> Result<(), String> {
    let bytes = std::fs::read(body_file).map_err(|e| e.to_string())?;
    let answer = Operation::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
    serve_on_loopback(|listener| async move {
        let service = OperationsServer::new(Fixed(answer));
        loop {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            // As opsd does (its accept loop), so that neither waits on delayed ACKs.
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
            });
        }
    })
}

/// The ceiling's service: the same answer to every GetOperation.
struct Fixed(Operation);

#[tonic::async_trait]
impl Operations for Fixed {
    async fn get_operation(
        &self,
        _: Request<GetOperationRequest>,
    ) -> Result<Response<Operation>, Status> {
        Ok(Response::new(self.0.clone()))
    }
    async fn list_operations(
        &self,
        _: Request<ListOperationsRequest>,
    ) -> Result<Response<ListOperationsResponse>, Status> {
        Err(Status::unimplemented("ceiling"))
    }
    async fn delete_operation(
        &self,
        _: Request<DeleteOperationRequest>,
    ) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("ceiling"))
    }
    async fn cancel_operation(
        &self,
        _: Request<CancelOperationRequest>,
    ) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("ceiling"))
    }
    async fn wait_operation(
        &self,
        _: Request<WaitOperationRequest>,
    ) -> Result<Response<Operation>, Status> {
        Err(Status::unimplemented("ceiling"))
    }
}
