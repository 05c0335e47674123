//! opsd's server: the HTTP API over a [`Store`](opsd_store::Store), and the serve loop
//! with graceful shutdown. The binary (`crates/opsd`) only parses flags and calls [`serve`].

pub mod accept;
pub mod app;
pub mod background;
pub mod grpc;
mod guarded_body;
pub mod http;
pub mod listener;
pub mod log;
pub mod metrics;
pub mod read_cache;
pub mod telemetry;
pub mod tls;

use std::future::Future;

pub use app::router;
pub use http::{AppState, Config, RateLimit};

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests — and so their writes — finish before returning. Waiters are
/// answered with the state they have and watch streams end, so that long-lived
/// requests do not hold shutdown up.
pub async fn serve<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
    L::Io: accept::Sniff,
{
    let live = state.live.clone();
    let header_read_timeout = state.header_read_timeout;
    let shutdown = async move {
        shutdown.await;
        live.shut_down();
    };
    accept::serve(listener, router(state), header_read_timeout, shutdown).await
}
