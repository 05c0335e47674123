//! opsd's server: the HTTP API over a [`Store`](opsd_store::Store), and the serve loop
//! with graceful shutdown. The binary (`crates/opsd`) only parses flags and calls [`serve`].

pub mod http;

use std::future::Future;

pub use http::{AppState, Config, RateLimit, router};
use tokio::net::TcpListener;

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests — and so their writes — finish before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
