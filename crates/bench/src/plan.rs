//! How big and how long each mode is. `smoke` only proves the harness works (tiny sizes,
//! debug binaries, meaningless numbers); `quick` is the everyday run (under 10 minutes);
//! `full` is what the README's numbers come from (`scale` grows to 5,000,000 operations).
//!
//! On PostgreSQL the quick run seeds less ([`Plan::for_postgres`]): opsd's PostgreSQL
//! store seeds a few hundred writes per second on the shared 2-core machine (SQLite:
//! over ten thousand), and the quick run must stay well under 10 minutes.

use std::time::Duration;

use serde::Serialize;

use crate::loadgen::Limits;

/// The run mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Smoke,
    Quick,
    Full,
}

/// Sizes and durations of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Read scenarios and the HTTP ceiling.
    pub read: Limits,
    /// Write scenarios and the storage ceiling.
    pub write: Limits,
    /// How deep the deep-page cursor is (items).
    pub deep: usize,
    /// Operations of the listed project (half pending, half running).
    pub list_ops: u64,
    /// Running operations for `transition` and `wait_wakeup`.
    pub running_ops: u64,
    /// Concurrent waiters in `wait_wakeup`.
    pub waiters: usize,
    /// Concurrent waiters in `wait_many` (`None`: not run). Capped by the open-files limit
    /// (each waiter is a socket in opsd and one in the harness).
    pub many_waiters: Option<usize>,
    /// Sizes at which `scale` measures the list.
    pub scale_sizes: Vec<u64>,
    /// Offered rate of the `scale` lists (low, so p50 is service time, not queueing).
    pub scale_rate: f64,
    /// Duration of each `scale` measurement.
    pub scale: Limits,
    /// Open-loop phases run at this fraction of the closed-loop throughput: a steady
    /// load well below saturation, where p50 is mostly service time.
    pub open_fraction: f64,
}

const fn limits(warmup_ms: u64, duration_ms: u64) -> Limits {
    Limits {
        warmup: Duration::from_millis(warmup_ms),
        duration: Duration::from_millis(duration_ms),
        max_requests: 50_000_000,
    }
}

impl Plan {
    /// The plan of `mode`.
    pub fn new(mode: Mode) -> Plan {
        match mode {
            Mode::Smoke => Plan {
                read: limits(100, 500),
                write: limits(100, 500),
                deep: 200,
                list_ops: 500,
                running_ops: 1_000,
                waiters: 100,
                many_waiters: Some(300),
                scale_sizes: vec![500, 1_000, 2_000],
                scale_rate: 100.0,
                scale: limits(100, 500),
                open_fraction: 0.25,
            },
            Mode::Quick => Plan {
                read: limits(1_000, 8_000),
                write: limits(1_000, 8_000),
                deep: 10_000,
                list_ops: 21_000,
                running_ops: 40_000,
                waiters: 10_000,
                // The quick run stays under 10 minutes; 10,000 waiters show the cost each.
                many_waiters: None,
                // 1M takes ~7 minutes to seed here (the full run does it).
                scale_sizes: vec![10_000, 100_000, 250_000],
                scale_rate: 200.0,
                scale: limits(1_000, 5_000),
                open_fraction: 0.25,
            },
            Mode::Full => Plan {
                read: limits(3_000, 30_000),
                write: limits(3_000, 30_000),
                deep: 10_000,
                list_ops: 21_000,
                running_ops: 150_000,
                waiters: 10_000,
                many_waiters: Some(50_000),
                scale_sizes: vec![10_000, 100_000, 1_000_000, 5_000_000],
                scale_rate: 200.0,
                scale: limits(2_000, 15_000),
                open_fraction: 0.25,
            },
        }
    }

    /// The plan for the PostgreSQL backend: the same as SQLite's, but the full run grows
    /// `scale` to 1,000,000 operations, not 5,000,000 (it measures every size at each of
    /// three round trips). The quick run seeds what SQLite's does (40,000 running
    /// operations, `scale` to 250,000) since PostgreSQL's writer seeds over 10,000 writes
    /// a second.
    pub fn for_postgres(self, mode: Mode) -> Plan {
        match mode {
            Mode::Full => Plan {
                scale_sizes: vec![10_000, 100_000, 1_000_000],
                ..self
            },
            Mode::Quick | Mode::Smoke => self,
        }
    }
}
