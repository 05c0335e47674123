//! The accept loop: one hyper connection per accepted socket, HTTP/1.1 or HTTP/2 (h2c
//! with prior knowledge on plain sockets, ALPN `h2` under TLS; hyper-util's `auto`
//! builder tells them apart by the connection's first bytes), with the limits axum's
//! own `serve` does not set.
//!
//! **Idle and slow clients.** A connection with no request in flight is closed after
//! the header read timeout (`--header-read-timeout`, 10 s by default; up to a quarter
//! more, as the watchdog looks a few times per timeout): one that never
//! sends a byte, one that stops inside HTTP/2's preface or inside a request's head
//! (HTTP/2 gives no request to the server until its head is whole), and an idle
//! keep-alive connection of either protocol. This watchdog is ours (`Activity`):
//! hyper times an HTTP/1 head itself, but neither hyper-util's version sniffing nor
//! hyper's HTTP/2 has such a timer. A request being answered — a 120 s wait, an open
//! watch stream — is in flight and is not cut. A connection asked to close this way
//! that still has not closed after the same time again is dropped.
//!
//! **HTTP/2 limits.** At most [`MAX_STREAMS`] concurrent streams per connection and a
//! head of at most [`MAX_HEADER_LIST_BYTES`]; bodies meet the same limits as HTTP/1's
//! (the router's body limit, gRPC's message limit); hyper's defaults bound reset
//! floods. Concurrency caps and rate limits apply per request, whatever the protocol.
//!
//! Each request carries the peer address (`ConnectInfo<SocketAddr>`), which the
//! authentication layer uses to limit failed attempts per client address.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use futures_util::FutureExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

/// Concurrent HTTP/2 streams one connection may open.
pub const MAX_STREAMS: u32 = 200;
/// Largest HTTP/2 request head (decoded header list), in bytes.
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_BYTES);
    // Every connection task holds a sender: when all are gone, all connections ended.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let activity = Activity::default();
        let idle = activity.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(addr));
            let in_flight = activity.start();
            app.clone().oneshot(request).map(move |answer| {
                answer.map(|response| response.map(|body| Tracked { body, in_flight }))
            })
        });
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let (open, mut stop) = (open_tx.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let connection = connection;
            tokio::pin!(connection);
            let mut closing_since_idle = false;
            let mut stopping = *stop.borrow();
            if stopping {
                connection.as_mut().graceful_shutdown();
            }
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%addr, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = idle_for(&idle, header_read_timeout), if !closing_since_idle && !stopping => {
                        connection.as_mut().graceful_shutdown();
                        closing_since_idle = true;
                    }
                    // Asked to close and still open: nothing is in flight, so nothing
                    // is lost by dropping it.
                    () = tokio::time::sleep(header_read_timeout), if closing_since_idle => break,
                    changed = stop.changed(), if !stopping => {
                        if changed.is_err() || *stop.borrow() {
                            stopping = true;
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

/// Resolves once no request has been in flight for `timeout` (a request starting or
/// ending starts the count again), give or take a quarter of it. Checked by polling a
/// few times per `timeout` rather than woken by every request: a wake-up and a new timer
/// per request cost about 9 % of `get_by_id`'s throughput (measured).
async fn idle_for(activity: &Activity, timeout: Duration) {
    let step = timeout / 4;
    let mut quiet = Duration::ZERO;
    let mut seen = activity.0.changes.load(Ordering::Acquire);
    loop {
        tokio::time::sleep(step).await;
        let changes = activity.0.changes.load(Ordering::Acquire);
        if changes == seen && activity.0.in_flight.load(Ordering::Acquire) == 0 {
            quiet += step;
            if quiet >= timeout {
                return;
            }
        } else {
            (seen, quiet) = (changes, Duration::ZERO);
        }
    }
}

/// The requests in flight on one connection, and a count of their starts and ends.
#[derive(Clone, Default)]
struct Activity(Arc<Counters>);

#[derive(Default)]
struct Counters {
    in_flight: AtomicUsize,
    changes: AtomicU64,
}

impl Activity {
    /// Counts a request until the returned guard drops (with its response body).
    fn start(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        self.0.changes.fetch_add(1, Ordering::AcqRel);
        InFlight(self.0.clone())
    }
}

struct InFlight(Arc<Counters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changes.fetch_add(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it is sent.
struct Tracked {
    body: Body,
    in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let _ = &self.in_flight;
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
