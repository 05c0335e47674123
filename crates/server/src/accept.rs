//! The accept loop: one hyper connection per accepted socket, with the limits axum's own
//! `serve` does not set. A client must send a request's head within the header read
//! timeout (`--header-read-timeout`, 10 s by default) of starting it, and an idle keep-alive connection is closed
//! after the same time (hyper arms the timer whenever it waits for a head), so
//! slowloris-style partial requests and thousands of idle sockets are cut instead of
//! holding file descriptors and tasks forever. A request being answered — a 120 s wait,
//! an open watch stream — is not idle and is not cut.
//!
//! HTTP/1.1 only: hyper's version-sniffing server (HTTP/2 prior knowledge) waits for a
//! connection's first bytes before any timer runs, so a socket that never sends one
//! would be kept forever. TLS already offers only `http/1.1`.
//!
//! Each request carries the peer address (`ConnectInfo<SocketAddr>`), which the
//! authentication layer uses to limit failed attempts per client address.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt;

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting and waits
/// for open connections to finish their requests.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(addr));
            app.clone().oneshot(request)
        });
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%addr, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
