//! What the proxy measures: the delay each chunk got per direction (a histogram in
//! microseconds), chunks and bytes, connections and the client's turns.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::lock;

/// A direction of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// The counters the threads update.
pub(crate) struct Recorder {
    up: DirRecorder,
    down: DirRecorder,
    /// Connections accepted.
    pub(crate) connections: AtomicU64,
    /// Client sends that followed server data (see [`Stats::turns`]).
    pub(crate) turns: AtomicU64,
}

struct DirRecorder {
    /// Delay from read to write, µs.
    delays: Mutex<Histogram<u64>>,
    chunks: AtomicU64,
    bytes: AtomicU64,
}

impl DirRecorder {
    fn new() -> DirRecorder {
        DirRecorder {
            // 1 µs to 100 s, three significant digits: 1 µs resolution up to ~2 ms,
            // 0.1% beyond (longer delays, from a blackhole, count as 100 s).
            delays: Mutex::new(
                Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds"),
            ),
            chunks: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    fn snapshot(&self) -> DirectionStats {
        let h = lock(&self.delays);
        DirectionStats {
            chunks: self.chunks.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            samples: h.len(),
            delay_p50_us: h.value_at_quantile(0.5),
            delay_p99_us: h.value_at_quantile(0.99),
            delay_max_us: h.max(),
        }
    }

    fn reset(&self) {
        lock(&self.delays).reset();
        self.chunks.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            up: DirRecorder::new(),
            down: DirRecorder::new(),
            connections: AtomicU64::new(0),
            turns: AtomicU64::new(0),
        }
    }

    fn dir(&self, dir: Dir) -> &DirRecorder {
        match dir {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        }
    }

    /// A chunk of `bytes` was read.
    pub(crate) fn read(&self, dir: Dir, bytes: usize) {
        let d = self.dir(dir);
        d.chunks.fetch_add(1, Ordering::Relaxed);
        d.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Chunks were written after these delays.
    pub(crate) fn delays(&self, dir: Dir, delays: impl Iterator<Item = Duration>) {
        let mut h = lock(&self.dir(dir).delays);
        for d in delays {
            h.saturating_record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        }
    }

    pub(crate) fn reset(&self) {
        self.up.reset();
        self.down.reset();
        self.connections.store(0, Ordering::Relaxed);
        self.turns.store(0, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, rtt: Duration, open: u64, blackholed: bool) -> Stats {
        let (up, down) = (self.up.snapshot(), self.down.snapshot());
        Stats {
            rtt_us: u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
            measured_rtt_p50_us: up.delay_p50_us + down.delay_p50_us,
            measured_rtt_p99_us: up.delay_p99_us + down.delay_p99_us,
            up,
            down,
            connections: self.connections.load(Ordering::Relaxed),
            open_connections: open,
            turns: self.turns.load(Ordering::Relaxed),
            blackholed,
        }
    }
}

/// What a proxy measured ([`Proxy::stats`](crate::Proxy::stats)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The round trip it was asked to add, µs.
    pub rtt_us: u64,
    /// The round trip it actually added: the median delay of the chunks it forwarded
    /// client → server plus the median server → client, µs. A little above `rtt_us`
    /// (by how late a writer woke and wrote); far above it when the machine had no CPU
    /// to spare for the proxy's threads.
    pub measured_rtt_p50_us: u64,
    /// The same with both directions' 99th percentiles.
    pub measured_rtt_p99_us: u64,
    /// Client → server.
    pub up: DirectionStats,
    /// Server → client.
    pub down: DirectionStats,
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// Round trips clients made, over all connections: per connection, each time the
    /// client sent data after data from the server reached it (its first send counts).
    /// Three requests each awaited before the next are three turns; three pipelined
    /// requests sent before reading, one.
    pub turns: u64,
    /// Whether traffic is held now.
    pub blackholed: bool,
}

/// One direction of [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectionStats {
    /// Chunks read (one `read` each).
    pub chunks: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Chunks whose delay was measured (written, and not held by a blackhole).
    pub samples: u64,
    /// Delay from read to written, median, µs.
    pub delay_p50_us: u64,
    /// Delay from read to written, 99th percentile, µs.
    pub delay_p99_us: u64,
    /// Longest delay, µs.
    pub delay_max_us: u64,
}

impl Stats {
    /// As JSON (`GET /stats` on the control address).
    pub fn to_json(&self) -> Value {
        let dir = |d: &DirectionStats| {
            json!({
                "chunks": d.chunks,
                "bytes": d.bytes,
                "samples": d.samples,
                "delay_p50_us": d.delay_p50_us,
                "delay_p99_us": d.delay_p99_us,
                "delay_max_us": d.delay_max_us,
            })
        };
        json!({
            "rtt_us": self.rtt_us,
            "measured_rtt_p50_us": self.measured_rtt_p50_us,
            "measured_rtt_p99_us": self.measured_rtt_p99_us,
            "up": dir(&self.up),
            "down": dir(&self.down),
            "connections": self.connections,
            "open_connections": self.open_connections,
            "turns": self.turns,
            "blackholed": self.blackholed,
        })
    }
}
