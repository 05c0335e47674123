//! opsd's server: the HTTP API over a [`Store`](opsd_store::Store), and the serve loop
//! with graceful shutdown. The binary (`crates/opsd`) only parses flags and calls [`serve`].

pub mod http;
pub mod tls;

use std::future::Future;

pub use http::{AppState, Config, RateLimit, router};

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests — and so their writes — finish before returning.
pub async fn serve<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
