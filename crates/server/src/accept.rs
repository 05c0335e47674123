//! The accept loop: one hyper connection per accepted socket, HTTP/1.1 or HTTP/2, with
//! the limits axum's own `serve` does not set.
//!
//! **Which HTTP.** On a plain socket, HTTP/2 with prior knowledge (h2c) begins with its
//! preface, `PRI * HTTP/2.0…`, and any HTTP/1 request with a method: the first four
//! bytes, peeked without reading them, tell which ([`Sniff`]). Under TLS it is what ALPN
//! agreed (`h2`, else HTTP/1.1). Each connection then runs hyper's HTTP/1 or HTTP/2
//! connection alone. hyper-util's `auto` builder, which did the telling before, keeps
//! both protocols' connection states in one value: every HTTP/1 connection's task was
//! sized for an HTTP/2 one, about 12 KiB more per open connection (10,000 parked waits:
//! 319 MiB resident instead of 200, measured by `wait_wakeup`).
//!
//! **Idle and slow clients.** A connection with no request in flight is closed after
//! the header read timeout (`--header-read-timeout`, 10 s by default; up to a quarter
//! more, as the watchdog looks a few times per timeout): one that never
//! sends a byte (it is never handed to hyper), one that stops inside HTTP/2's preface or
//! inside a request's head (HTTP/2 gives no request to the server until its head is
//! whole), and an idle keep-alive connection of either protocol. This watchdog is ours
//! (`Activity`): hyper times an HTTP/1 head itself, but its HTTP/2 has no such timer. A
//! request being answered — a 120 s wait, an open watch stream — is in flight and is not
//! cut. A connection asked to close this way
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
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

use crate::guarded_body::Guarded;

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
    L::Io: Sniff,
{
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_BYTES);
    let (http1, http2) = (Arc::new(http1), Arc::new(http2));
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
                answer.map(|response| response.map(|body| Guarded::new(body, in_flight)))
            })
        });
        let (http1, http2) = (http1.clone(), http2.clone());
        let closing = Closing {
            addr,
            idle,
            timeout: header_read_timeout,
            stop: stop_rx.clone(),
            open: open_tx.clone(),
        };
        tokio::spawn(async move {
            let mut closing = closing;
            // A client that sends nothing legible in time is dropped before hyper sees
            // it, and so is one that has not when the server stops: an HTTP client's
            // pool may hold a connection it opened in a race and never used, which
            // must not hold up a graceful shutdown for the header read timeout.
            let version = tokio::select! {
                version = tokio::time::timeout(header_read_timeout, io.http_version()) => version,
                () = closing.stopped() => return,
            };
            let Ok(Ok(version)) = version else {
                return;
            };
            let io = TokioIo::new(io);
            match version {
                HttpVersion::Http1 => closing.drive(http1.serve_connection(io, service)).await,
                // Boxed: this task's future stays the size of an HTTP/1 connection.
                HttpVersion::Http2 => {
                    Box::pin(closing.drive(http2.serve_connection(io, service))).await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

/// What a connection's task needs to end it: when it has been idle too long, or when
/// the server stops (then it finishes what is in flight).
struct Closing {
    addr: SocketAddr,
    idle: Activity,
    timeout: Duration,
    stop: watch::Receiver<bool>,
    /// Held until the connection ends: the server waits for every one to drop.
    open: mpsc::Sender<()>,
}

impl Closing {
    /// Resolves once the server stops.
    async fn stopped(&mut self) {
        while !*self.stop.borrow_and_update() {
            if self.stop.changed().await.is_err() {
                return;
            }
        }
    }

    async fn drive<C: GracefulConnection>(mut self, connection: C) {
        tokio::pin!(connection);
        let mut closing_since_idle = false;
        let mut stopping = *self.stop.borrow();
        if stopping {
            connection.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(addr = %self.addr, error = %e, "connection ended with an error");
                    }
                    break;
                }
                () = idle_for(&self.idle, self.timeout), if !closing_since_idle && !stopping => {
                    connection.as_mut().graceful_shutdown();
                    closing_since_idle = true;
                }
                // Asked to close and still open: nothing is in flight, so nothing
                // is lost by dropping it.
                () = tokio::time::sleep(self.timeout), if closing_since_idle => break,
                changed = self.stop.changed(), if !stopping => {
                    if changed.is_err() || *self.stop.borrow() {
                        stopping = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        drop(self.open);
    }
}

/// A hyper server connection of either protocol.
trait GracefulConnection: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulConnection for http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::Connection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> GracefulConnection for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}

/// Which HTTP a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http1,
    Http2,
}

/// A connection that can tell which HTTP it speaks before hyper reads from it.
pub trait Sniff {
    /// Waits until the connection has said enough to tell; an error if it failed first.
    fn http_version(&self) -> impl Future<Output = std::io::Result<HttpVersion>> + Send;
}

/// The start of HTTP/2's connection preface; no HTTP/1 method is `PRI`.
const H2_PREFACE_START: &[u8; 4] = b"PRI ";

impl Sniff for tokio::net::TcpStream {
    async fn http_version(&self) -> std::io::Result<HttpVersion> {
        let mut first = [0u8; 4];
        loop {
            let n = self.peek(&mut first).await?;
            if n == 0 || first[..n] != H2_PREFACE_START[..n] {
                // Closed (hyper will see the end), or a method that is not `PRI`.
                return Ok(HttpVersion::Http1);
            }
            if n == first.len() {
                return Ok(HttpVersion::Http2);
            }
            // The preface's start in more than one packet: peeking again would return
            // at once with the same bytes, so look again shortly instead of spinning.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// What the server's side of a connection tells after the client sent `parts`, a
    /// few milliseconds apart (the connection stays open until it has told).
    async fn version_after(parts: &[&'static [u8]]) -> HttpVersion {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let parts = parts.to_vec();
        let writer = tokio::spawn(async move {
            for part in parts {
                client.write_all(part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            client
        });
        let version = server.http_version().await.unwrap();
        drop(writer.await.unwrap());
        version
    }

    #[tokio::test]
    async fn the_first_bytes_tell_http2_from_http1() {
        assert_eq!(
            version_after(&[b"PRI * HTTP/2.0\r\n"]).await,
            HttpVersion::Http2
        );
        // The preface's start split over packets is waited for, not taken for HTTP/1.
        assert_eq!(
            version_after(&[b"P", b"RI", b" * HTTP/2.0"]).await,
            HttpVersion::Http2
        );
        assert_eq!(
            version_after(&[b"GET / HTTP/1.1\r\n"]).await,
            HttpVersion::Http1
        );
        assert_eq!(
            version_after(&[b"PROPFIND / HTTP/1.1\r\n"]).await,
            HttpVersion::Http1
        );
        assert_eq!(version_after(&[b"P", b"OST"]).await, HttpVersion::Http1);
    }

    #[tokio::test]
    async fn a_connection_closed_before_a_byte_is_left_to_http1() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop(client);
        // hyper's HTTP/1 then reads the end and stops.
        assert_eq!(server.http_version().await.unwrap(), HttpVersion::Http1);
    }

    /// A socket that never says which HTTP it speaks does not hold up a stopping server
    /// for the header read timeout.
    #[tokio::test]
    async fn a_silent_socket_does_not_delay_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Router::new(),
            Duration::from_secs(60),
            async move {
                let _ = stopped.await;
            },
        ));
        let _silent = TcpStream::connect(addr).await.unwrap();
        // Accepted and sniffing before the stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), server).await;
        assert!(ended.is_ok(), "the server waited for a silent socket");
    }
}
