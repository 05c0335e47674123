//! `opsd-bench otlp-sink`: a collector that accepts OTLP/HTTP exports and throws them
//! away, for measuring what trace export costs opsd (docs/tracing.md): point
//! `OTEL_EXPORTER_OTLP_ENDPOINT` at it and run the benchmark. It counts what it got,
//! so that a run can show the spans really left opsd.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

#[derive(Default)]
struct Counts {
    exports: AtomicU64,
    bytes: AtomicU64,
}

/// Serves `POST /v1/traces` on `listen` until killed, printing the counts every `every`.
pub fn serve(listen: SocketAddr, every: Duration) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async move {
        let counts = Arc::new(Counts::default());
        let seen = counts.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let seen = seen.clone();
                async move {
                    seen.exports.fetch_add(1, Ordering::Relaxed);
                    seen.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    // An empty ExportTraceServiceResponse: everything accepted.
                    ([("content-type", "application/x-protobuf")], Bytes::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        eprintln!("opsd-bench otlp-sink: http://{listen}/v1/traces");
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                eprintln!(
                    "opsd-bench otlp-sink: {} exports, {} bytes",
                    counts.exports.load(Ordering::Relaxed),
                    counts.bytes.load(Ordering::Relaxed)
                );
            }
        });
        axum::serve(listener, app)
            .await
            .map_err(|e| format!("otlp-sink: {e}"))
    })
}
