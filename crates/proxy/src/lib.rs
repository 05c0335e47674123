//! A delaying TCP proxy: puts distance between a client and a server on one machine.
//!
//! Every byte is forwarded in order, each direction `rtt / 2` after the proxy read it,
//! so a request and its answer cost the client one `rtt` more than they would
//! directly. Built for the tests of any crate and for the benchmark (`opsd-bench proxy`,
//! `scripts/bench --pg-rtt`):
//!
//! - **Precision.** Each connection has four threads of its own: per direction a reader
//!   that stamps every chunk with its arrival and queues it, and a writer that waits
//!   for the chunk's deadline and writes it, with whatever else is already due. The
//!   writer sleeps until shortly before the deadline (by how late its sleeps usually
//!   end, learned; every proxy thread asks for a 1 ns timer slack) and never spins, so
//!   the proxy takes no CPU from what it measures: a deadline is met within tens of
//!   microseconds on an idle machine. tokio's timers have a 1 ms granularity,
//!   too coarse for a 0.5 ms round trip (ARCHITECTURE.md, "The delaying proxy").
//! - **Measurement.** The delay each chunk actually got (its write minus its arrival) goes
//!   into a histogram per direction; [`Stats::measured_rtt_p50_us`] is the sum of both
//!   directions' medians, what the proxy really imposed under the load of the moment.
//! - **Round trips.** [`Stats::turns`] counts, per connection, every time the client
//!   sends after data from the server reached it since its previous send: the number of
//!   request flights, i.e. of round trips the client waited for.
//! - **Faults.** [`Proxy::blackhole`] holds every byte in both directions (buffered, not
//!   lost; new connections are accepted, nothing flows), [`Proxy::flow`] releases them,
//!   [`Proxy::cut`] closes every current connection while new ones are accepted. The same
//!   on an optional control address, a tiny HTTP/1.1 server: `POST /blackhole`,
//!   `POST /flow`, `POST /cut`, `GET /stats` (JSON).
//!
//! ```no_run
//! # use std::time::Duration;
//! use opsd_proxy::{Proxy, ProxyConfig};
//! let proxy = Proxy::start(ProxyConfig {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     upstream: "127.0.0.1:5432".parse().unwrap(),
//!     rtt: Duration::from_micros(500),
//!     control: None,
//! })?;
//! // Connect to proxy.addr() instead of 127.0.0.1:5432, then:
//! let stats = proxy.stats();
//! println!("{} µs p50, {} round trips", stats.measured_rtt_p50_us, stats.turns);
//! # Ok::<(), std::io::Error>(())
//! ```

mod control;
mod pipe;
mod stats;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use stats::{DirectionStats, Stats};

/// What [`Proxy::start`] needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where clients connect (port 0: any free port; see [`Proxy::addr`]).
    pub listen: SocketAddr,
    /// The server every connection is forwarded to.
    pub upstream: SocketAddr,
    /// The round trip added: each direction is delayed by half of it. Zero forwards
    /// at once.
    pub rtt: Duration,
    /// Where to serve the control API (`POST /blackhole`, `/flow`, `/cut`,
    /// `GET /stats`), if anywhere (port 0 allowed; see [`Proxy::control_addr`]).
    pub control: Option<SocketAddr>,
}

/// A running proxy; stopped (every thread and connection ended) when dropped.
pub struct Proxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    /// The accept loop and the control server.
    threads: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Binds `config.listen` (and the control address) and starts forwarding.
    pub fn start(config: ProxyConfig) -> io::Result<Proxy> {
        let listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let control = config.control.map(TcpListener::bind).transpose()?;
        let control_addr = control.as_ref().map(TcpListener::local_addr).transpose()?;
        let shared = Arc::new(Shared {
            upstream: config.upstream,
            rtt: config.rtt,
            stopping: AtomicBool::new(false),
            gate: Mutex::new(Gate::default()),
            gate_changed: Condvar::new(),
            conns: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            overshoot_ns: AtomicU64::new(30_000),
            stats: stats::Recorder::new(),
        });
        let mut threads = vec![spawn("opsd-proxy-accept", {
            let shared = shared.clone();
            move || accept_loop(&listener, &shared)
        })?];
        if let Some(listener) = control {
            threads.push(spawn("opsd-proxy-control", {
                let shared = shared.clone();
                move || control::serve(&listener, &shared)
            })?);
        }
        Ok(Proxy {
            shared,
            addr,
            control_addr,
            threads,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the control API listens, if it was asked for.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// The round trip this proxy adds.
    pub fn rtt(&self) -> Duration {
        self.shared.rtt
    }

    /// What it measured since it started (or since [`reset_stats`](Self::reset_stats)).
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Forgets what was measured so far (connections stay open).
    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Holds all traffic in both directions from now on: nothing is written to either
    /// side, everything read is buffered; new connections are still accepted.
    pub fn blackhole(&self) {
        self.shared.blackhole();
    }

    /// Ends a [`blackhole`](Self::blackhole): what was held is written at once, in order,
    /// and forwarding goes on with its delay.
    pub fn flow(&self) {
        self.shared.flow();
    }

    /// Closes every current connection (both sockets shut down); new ones are accepted.
    /// Returns how many were closed.
    pub fn cut(&self) -> usize {
        self.shared.cut()
    }

    /// Stops accepting, closes every connection and waits for every thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the writers waiting out a blackhole (taking the lock first: a writer that
        // saw `stopping` false still holds it until it waits), and the blocked accepts.
        drop(lock(&self.shared.gate));
        self.shared.gate_changed.notify_all();
        for addr in std::iter::once(self.addr).chain(self.control_addr) {
            let _ = TcpStream::connect_timeout(&connectable(addr), Duration::from_secs(1));
        }
        self.shared.close_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Connection threads end once their sockets are shut down; a connection still
        // being set up shuts its own down when it sees `stopping`.
        loop {
            let batch = std::mem::take(&mut *lock(&self.shared.threads));
            if batch.is_empty() {
                break;
            }
            self.shared.close_all();
            for t in batch {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Parses a round trip as `scripts/bench --pg-rtt` and `opsd-bench proxy --rtt` take it:
/// a number with a unit (`500us`, `500µs`, `0.5ms`, `2ms`, `0.002s`); a bare number is
/// milliseconds (`0`, `0.5`).
pub fn parse_rtt(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a round trip like 0.5ms, 500us or 2ms"))?;
    let seconds = match unit.trim() {
        "" | "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "s" => value,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (ns, us, ms or s)"
            ));
        }
    };
    if !(0.0..=60.0).contains(&seconds) {
        return Err(format!("{text:?}: a round trip must be between 0 and 60 s"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A round trip as text (`0`, `500µs`, `0.5ms`, `2ms`), the inverse of [`parse_rtt`].
pub fn format_rtt(rtt: Duration) -> String {
    let us = rtt.as_micros();
    if us == 0 {
        "0".into()
    } else if us < 100 {
        format!("{us}µs")
    } else {
        let ms = rtt.as_secs_f64() * 1e3;
        let text = format!("{ms:.3}");
        format!("{}ms", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// What the proxy's threads share.
pub(crate) struct Shared {
    upstream: SocketAddr,
    rtt: Duration,
    stopping: AtomicBool,
    gate: Mutex<Gate>,
    gate_changed: Condvar,
    /// Open connections: their sockets, to shut them down from outside.
    conns: Mutex<HashMap<u64, Sockets>>,
    /// Every connection thread not yet joined.
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_id: AtomicU64,
    /// How late a writer's sleep usually ends, ns (see `pipe::sleep_until`).
    overshoot_ns: AtomicU64,
    pub(crate) stats: stats::Recorder,
}

/// Whether traffic is held.
#[derive(Default)]
struct Gate {
    blackholed: bool,
    /// When the last blackhole ended: chunks that arrived before it were held, and
    /// their delay says nothing about the proxy's precision.
    released: Option<Instant>,
}

/// Clones of one connection's sockets.
struct Sockets {
    client: TcpStream,
    upstream: Option<TcpStream>,
    cut: bool,
}

impl Sockets {
    fn shut(&mut self) {
        self.cut = true;
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(up) = &self.upstream {
            let _ = up.shutdown(Shutdown::Both);
        }
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> Stats {
        let open = lock(&self.conns).len() as u64;
        let blackholed = lock(&self.gate).blackholed;
        self.stats.snapshot(self.rtt, open, blackholed)
    }

    pub(crate) fn blackhole(&self) {
        lock(&self.gate).blackholed = true;
    }

    pub(crate) fn flow(&self) {
        let mut gate = lock(&self.gate);
        if gate.blackholed {
            gate.blackholed = false;
            gate.released = Some(Instant::now());
        }
        drop(gate);
        self.gate_changed.notify_all();
    }

    pub(crate) fn cut(&self) -> usize {
        let mut conns = lock(&self.conns);
        let mut n = 0;
        for s in conns.values_mut().filter(|s| !s.cut) {
            s.shut();
            n += 1;
        }
        n
    }

    fn close_all(&self) {
        for s in lock(&self.conns).values_mut() {
            s.shut();
        }
    }

    /// Waits while traffic is held. Returns `None` when the proxy stops, else whether a
    /// chunk that arrived at `arrived` was held by a blackhole.
    fn pass(&self, arrived: Instant) -> Option<bool> {
        let mut gate = lock(&self.gate);
        while gate.blackholed && !self.stopping() {
            gate = self
                .gate_changed
                .wait(gate)
                .unwrap_or_else(|e| e.into_inner());
        }
        if self.stopping() {
            return None;
        }
        Some(gate.released.is_some_and(|r| arrived < r))
    }

    fn keep_thread(&self, handle: JoinHandle<()>) {
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        match stream {
            Ok(client) => pipe::start(client, shared),
            // Out of file descriptors, say: try again shortly rather than spin.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Spawns a named thread with a small stack (the proxy may run hundreds of them).
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(256 * 1024)
        .spawn(move || {
            pipe::precise();
            f()
        })
}

/// An address to connect to that reaches a listener bound to `addr` (which may be the
/// unspecified address).
fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
        a => a,
    }
}

/// Locks `m`; a thread that panicked while holding it left nothing half-done that
/// matters here.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_parse_and_print() {
        for (text, us) in [
            ("0", 0),
            ("0.5ms", 500),
            ("0.5", 500),
            ("500us", 500),
            ("500µs", 500),
            ("2ms", 2_000),
            ("0.002s", 2_000),
            ("20ms", 20_000),
        ] {
            assert_eq!(parse_rtt(text), Ok(Duration::from_micros(us)), "{text}");
        }
        for bad in ["", "ms", "-1ms", "1h", "0.5 parsecs", "100s"] {
            assert!(parse_rtt(bad).is_err(), "{bad}");
        }
        for (us, text) in [(0, "0"), (50, "50µs"), (500, "0.5ms"), (2_000, "2ms")] {
            assert_eq!(format_rtt(Duration::from_micros(us)), text);
            assert_eq!(parse_rtt(text), Ok(Duration::from_micros(us)));
        }
    }
}
