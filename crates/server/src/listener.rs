//! The plain TCP listener (no TLS; `tls` wraps the same socket setup in a handshake):
//! every accepted connection has Nagle's algorithm off.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Turns Nagle's algorithm off on an accepted connection. Without it an HTTP/2 answer —
/// a gRPC call's headers, message and trailers go out as separate writes — waits for the
/// client's delayed ACK: about 40 ms per call, measured by the benchmark's `grpc_get`.
pub fn no_delay(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// A listener without TLS whose connections have Nagle's algorithm off ([`no_delay`]).
pub fn plain(tcp: TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr, Io = TcpStream> {
    use axum::serve::ListenerExt;
    tcp.tap_io(|stream| no_delay(stream))
}
