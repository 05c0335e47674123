//! The load generator: keep-alive HTTP/1.1 connections (hyper's connection API, one
//! task per connection) driven either closed-loop (each connection sends its next
//! request as soon as the previous answer arrived: the most a server can do with N
//! connections) or open-loop (requests scheduled at a fixed rate, latency measured from
//! the *scheduled* send time, so a slow server cannot hide its queue by slowing the
//! client down — no coordinated omission). Latencies go into HDR histograms.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A request as the load generator sends it.
pub type Req = Request<Full<Bytes>>;

/// Makes the next request of a run (`None`: nothing left to send, e.g. a pool of
/// operations to transition is used up).
pub type MakeReq = Arc<dyn Fn(&mut Rng) -> Option<Req> + Send + Sync>;

/// Highest latency the histograms hold: one hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

/// An empty latency histogram in microseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant bounds that hdrhistogram accepts")
}

/// A small, fast, seedable generator (xorshift64*): random ids and jitter need no
/// cryptographic quality, and one function is not worth a dependency.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced, xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The API key every request carries (opsd's admin key of the server under test; the
/// ceilings ignore it but receive the same bytes). Load goes to one server, or one
/// cluster of replicas, at a time; whoever switches between them switches the key.
static API_KEY: std::sync::RwLock<Option<hyper::header::HeaderValue>> =
    std::sync::RwLock::new(None);

/// Sets the key that requests carry from now on.
pub fn set_api_key(key: &str) -> Result<(), String> {
    let value = hyper::header::HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| "the API key is not a valid header value".to_owned())?;
    let mut slot = API_KEY
        .write()
        .map_err(|_| "API key lock poisoned".to_owned())?;
    *slot = Some(value);
    Ok(())
}

/// The `Bearer …` value requests carry, if set (for clients other than [`Conn`]).
pub fn api_key() -> Option<hyper::header::HeaderValue> {
    API_KEY.read().ok().and_then(|k| k.clone())
}

/// One keep-alive connection, re-opened if the server closes it.
pub struct Conn {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `addr`, opened on first use.
    pub fn new(addr: SocketAddr) -> Self {
        Conn {
            addr,
            source: None,
            sender: None,
        }
    }

    /// A connection to `addr` from the local address `source` (any port): one address
    /// has about 28,000 ephemeral ports, fewer than `wait_many`'s connections.
    pub fn from_source(addr: SocketAddr, source: std::net::IpAddr) -> Self {
        Conn {
            addr,
            source: Some(source),
            sender: None,
        }
    }

    /// Opens the TCP connection now (so that connecting is not timed later).
    pub async fn open(&mut self) -> Result<(), String> {
        if self.sender.is_none() {
            let stream = match self.source {
                None => TcpStream::connect(self.addr).await,
                Some(source) => connect_from(source, self.addr).await,
            }
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(async move {
                // Ends when the server closes or the sender is dropped; either is fine.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(())
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, mut req: Req) -> Result<(StatusCode, Bytes), String> {
        if let Some(key) = API_KEY.read().ok().and_then(|k| k.clone()) {
            req.headers_mut().insert(hyper::header::AUTHORIZATION, key);
        }
        self.open().await?;
        let outcome = async {
            let sender = self.sender.as_mut().ok_or("no connection")?;
            sender.ready().await.map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((status, body.to_bytes()))
        }
        .await;
        if outcome.is_err() {
            self.sender = None; // the next request reconnects
        }
        outcome
    }
}

/// Bounds of one load phase: it stops at whichever comes first.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Unmeasured time first (connections warm, caches filled).
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Most requests sent, warm-up included.
    pub max_requests: u64,
}

impl Limits {
    /// A phase that lasts until its requests run out (a request maker that answers
    /// `None`), with no warm-up, within five minutes.
    pub const UNTIL_DONE: Limits = Limits {
        warmup: Duration::ZERO,
        duration: Duration::from_secs(300),
        max_requests: u64::MAX,
    };
}

/// What a load phase measured.
pub struct Stats {
    /// Latencies of measured, successful requests, in microseconds.
    pub hist: Histogram<u64>,
    /// Measured requests answered 2xx.
    pub ok: u64,
    /// Measured requests that failed or were answered otherwise.
    pub errors: u64,
    /// One example failure, for the log.
    pub first_error: Option<String>,
    /// Measured wall time.
    pub elapsed: Duration,
}

impl Stats {
    /// Nothing measured yet.
    pub fn empty() -> Self {
        Stats {
            hist: histogram(),
            ok: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        }
    }

    fn merge(&mut self, other: Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.ok += other.ok;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }

    /// This phase and `other` as one (the rounds of an alternating measurement).
    pub fn combine(mut self, other: Stats) -> Stats {
        self.add(other);
        self
    }

    /// Adds `other`, a later stretch of the same measurement (rounds): its requests,
    /// latencies and measured time.
    pub fn add(&mut self, other: Stats) {
        self.elapsed += other.elapsed;
        self.merge(other);
    }

    /// Successful requests per second of measured time.
    pub fn ops_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// A latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    fn record(&mut self, outcome: &Result<(StatusCode, Bytes), String>, micros: u64) {
        match outcome {
            Ok((status, _)) if status.is_success() => {
                self.ok += 1;
                self.hist.saturating_record(micros.max(1));
            }
            Ok((status, body)) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| {
                    format!("HTTP {status}: {}", String::from_utf8_lossy(body))
                });
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| e.clone());
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs `conn_task(i)` for each of `conns` connections, each on a task of its own, and
/// merges what they measured (a task that panicked counts nothing).
async fn on_each_conn<F, Fut>(conns: usize, conn_task: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Stats> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        tasks.spawn(conn_task(i));
    }
    let mut total = Stats::empty();
    while let Some(done) = tasks.join_next().await {
        if let Ok(stats) = done {
            total.merge(stats);
        }
    }
    total
}

/// Closed loop: `conns` connections, each sending back to back.
pub async fn closed_loop(addr: SocketAddr, conns: usize, limits: Limits, make: MakeReq) -> Stats {
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + limits.warmup;
    let end = measure_from + limits.duration;
    let mut total = on_each_conn(conns, |i| {
        let (make, sent) = (make.clone(), sent.clone());
        async move {
            let mut stats = Stats::empty();
            let mut conn = Conn::new(addr);
            let mut rng = Rng::new(i as u64 + 1);
            while Instant::now() < end && sent.fetch_add(1, Ordering::Relaxed) < limits.max_requests
            {
                let Some(req) = make(&mut rng) else { break };
                let t0 = Instant::now();
                let outcome = conn.send(req).await;
                if t0 >= measure_from {
                    stats.record(&outcome, micros(t0.elapsed()));
                }
            }
            stats
        }
    })
    .await;
    total.elapsed = Instant::now().saturating_duration_since(measure_from);
    total
}

/// Open loop at `rate` requests per second spread over `conns` connections, each with
/// its own fixed schedule (as wrk2 does). A request whose connection is still busy at
/// its scheduled time is sent when the connection frees up, and its latency counts from
/// the scheduled time. The only time not charged to the server is the timer's own
/// lateness when the connection was idle (tokio's timer has millisecond granularity,
/// which would otherwise add up to a millisecond to every sub-millisecond answer).
pub async fn open_loop(
    addr: SocketAddr,
    conns: usize,
    rate: f64,
    limits: Limits,
    make: MakeReq,
) -> Stats {
    let conns = conns.max(1);
    let interval = Duration::from_secs_f64(conns as f64 / rate.max(0.001));
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + limits.warmup;
    let end = measure_from + limits.duration;
    let mut total = on_each_conn(conns, |i| {
        let (make, sent) = (make.clone(), sent.clone());
        async move {
            let mut stats = Stats::empty();
            let mut conn = Conn::new(addr);
            if let Err(e) = conn.open().await {
                stats.errors += 1;
                stats.first_error = Some(e);
                return stats;
            }
            let mut rng = Rng::new(i as u64 + 1);
            let mut scheduled = start + interval.mul_f64(i as f64 / conns as f64);
            let mut free_at = Instant::now();
            while scheduled < end && sent.fetch_add(1, Ordering::Relaxed) < limits.max_requests {
                let Some(req) = make(&mut rng) else { break };
                tokio::time::sleep_until(scheduled).await;
                let sent_at = Instant::now();
                let timer_slack = sent_at.saturating_duration_since(scheduled.max(free_at));
                let outcome = conn.send(req).await;
                free_at = Instant::now();
                if scheduled >= measure_from {
                    let latency = free_at.saturating_duration_since(scheduled) - timer_slack;
                    stats.record(&outcome, micros(latency));
                }
                scheduled += interval;
            }
            stats
        }
    })
    .await;
    total.elapsed = Instant::now()
        .saturating_duration_since(measure_from)
        .min(limits.duration.max(Duration::from_millis(1)));
    total
}

/// Connects to `addr` from `source` on an OS-chosen port.
async fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_stays_in_range_and_varies() {
        let mut rng = Rng::new(7);
        let draws: Vec<usize> = (0..1000).map(|_| rng.below(10)).collect();
        assert!(draws.iter().all(|d| *d < 10));
        assert!((0..10).all(|v| draws.contains(&v)));
    }

    #[test]
    fn stats_merge_and_quantiles() {
        let mut a = Stats::empty();
        a.record(&Ok((StatusCode::OK, Bytes::new())), 1000);
        let mut b = Stats::empty();
        b.record(&Ok((StatusCode::OK, Bytes::new())), 3000);
        b.record(&Ok((StatusCode::NOT_FOUND, Bytes::from("no"))), 5);
        a.merge(b);
        a.elapsed = Duration::from_secs(1);
        assert_eq!((a.ok, a.errors), (2, 1));
        assert_eq!(a.ops_per_s(), 2.0);
        assert!((a.quantile_ms(0.99) - 3.0).abs() < 0.01);
        assert!(a.first_error.is_some_and(|e| e.contains("404")));
    }
}
