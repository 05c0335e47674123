//! `wait_wakeup`: `plan.waiters` clients each hold a `GET /v1/operations/{id}/wait`
//! (docs/live-operations.md) on its own connection, then 64 producers finish those
//! operations with PATCH. A waiter's release latency is the time from its write's
//! acknowledgement to its own answer. Targets: p99 ≤ 100 ms, and opsd's peak RSS ≤ 200 MiB
//! at 10,000 waiters. A build without the endpoint (404/405 on the route) records the
//! scenario as skipped rather than failing the run.
//!
//! `wait_many` is the same with `plan.many_waiters` (50,000 in the full run): what one opsd
//! holds, in memory and release time, at that many. Each waiter is a socket in opsd and
//! one here, so the count is capped by the open-files limit this process could raise its
//! own to (opsd inherits it): a machine whose hard limit is lower runs fewer and says so
//! (`waiters_wanted`, `open_files_limit`). Both report opsd's resident memory before the
//! waiters connect and per waiter (peak minus that, over the waiters).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::StatusCode;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::ctx::Ctx;
use crate::loadgen::{Conn, histogram};
use crate::outcome::{Entry, Outcome, r3};
use crate::workload;

/// The wait timeout asked of the server; the whole scenario is bounded by twice that.
/// Past 10,000 waiters the server's longest (120 s): connecting and finishing 50,000
/// takes longer than a minute on a busy 2-core machine, and an early waiter must not
/// time out before its write.
fn wait_timeout_s(waiters: usize) -> u64 {
    if waiters > 10_000 { 120 } else { 60 }
}
/// Connections opened at once (the server's accept backlog is finite).
const CONNECTING: usize = 256;
const WRITERS: usize = 64;
/// The peak RSS target at this many waiters (`wait_wakeup`).
const RSS_TARGET_MB: f64 = 200.0;
const RSS_TARGET_WAITERS: usize = 10_000;
/// Descriptors each process keeps beside the waiters' sockets (writers, files, the
/// database, the runtime).
const SPARE_FILES: u64 = 256;
/// Waiter connections per local source address (an address has ~28,000 ephemeral ports).
const PER_SOURCE: usize = 20_000;

/// Per-waiter timestamps in nanoseconds since the scenario's start (0 = not yet); shared
/// with the replicas' `wait_wakeup`.
pub(crate) struct Times {
    base: Instant,
    pub(crate) write_sent: Vec<AtomicU64>,
    pub(crate) write_acked: Vec<AtomicU64>,
    pub(crate) released: Vec<AtomicU64>,
}

/// What the timestamps of a run add up to.
pub(crate) struct Tally {
    /// Release latency from the write's acknowledgement, in microseconds.
    pub(crate) from_ack: hdrhistogram::Histogram<u64>,
    /// Release latency from the moment the write was sent, in microseconds.
    pub(crate) from_sent: hdrhistogram::Histogram<u64>,
    pub(crate) released: u64,
    /// Waiters answered before their operation was finished.
    pub(crate) premature: u64,
    /// From the first write sent to the last release, in seconds.
    pub(crate) window_s: f64,
}

/// Waiter `i`: waits on `conn` (up to `timeout_s`) for operation `ids[i]`, stamps when it
/// was answered, and fails unless the answer is the operation, done.
pub(crate) async fn wait_until_done(
    conn: &mut Conn,
    ids: &[uuid::Uuid],
    i: usize,
    timeout_s: u64,
    times: &Times,
) -> Result<(), String> {
    let (status, body) = conn.send(workload::wait(ids[i], timeout_s)).await?;
    times.stamp(&times.released, i);
    let done =
        serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v["status"] == "done");
    if status.is_success() && done {
        Ok(())
    } else {
        Err(format!("waiter answered {status}, operation not done"))
    }
}

impl Times {
    pub(crate) fn new(n: usize) -> Times {
        let slots = || (0..n).map(|_| AtomicU64::new(0)).collect();
        Times {
            base: Instant::now(),
            write_sent: slots(),
            write_acked: slots(),
            released: slots(),
        }
    }

    pub(crate) fn stamp(&self, slot: &[AtomicU64], i: usize) {
        let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Some(s) = slot.get(i) {
            s.store(ns.max(1), Ordering::Relaxed);
        }
    }

    /// Adds up the first `n` waiters.
    pub(crate) fn tally(&self, n: usize) -> Tally {
        let mut t = Tally {
            from_ack: histogram(),
            from_sent: histogram(),
            released: 0,
            premature: 0,
            window_s: 0.0,
        };
        let (mut first_write, mut last_release) = (u64::MAX, 0u64);
        for i in 0..n {
            let sent = self.write_sent[i].load(Ordering::Relaxed);
            let acked = self.write_acked[i].load(Ordering::Relaxed);
            let rel = self.released[i].load(Ordering::Relaxed);
            if rel == 0 || acked == 0 {
                continue;
            }
            if rel < sent {
                t.premature += 1; // answered before its operation was finished
                continue;
            }
            t.released += 1;
            first_write = first_write.min(sent);
            last_release = last_release.max(rel);
            t.from_ack
                .saturating_record((rel.saturating_sub(acked) / 1000).max(1));
            t.from_sent
                .saturating_record((rel.saturating_sub(sent) / 1000).max(1));
        }
        t.window_s = last_release.saturating_sub(first_write) as f64 / 1e9;
        t
    }
}

/// Runs `wait_wakeup`.
pub fn wait_wakeup(ctx: &Ctx) -> Result<Entry, String> {
    measure(ctx, ctx.plan.waiters, "wait")
}

/// Runs `wait_many`: as many waiters as the plan asks and the open-files limit allows.
pub fn wait_many(ctx: &Ctx) -> Result<Entry, String> {
    let Some(wanted) = ctx.plan.many_waiters else {
        return Ok(Entry::Skipped("full mode only".into()));
    };
    measure(ctx, wanted, "wait-many")
}

/// The open-files limit (soft) this process runs with; opsd inherits it.
fn open_files_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
}

fn measure(ctx: &Ctx, wanted: usize, dir_name: &str) -> Result<Entry, String> {
    let limit = open_files_limit();
    let fit = usize::try_from(limit.saturating_sub(SPARE_FILES)).unwrap_or(usize::MAX);
    let n = wanted.min(fit).min(ctx.template.running.len());
    let ids: Vec<_> = ctx.template.running[..n].to_vec();
    let (_dir, server) = ctx.fresh_opsd(dir_name)?;
    let addr = server.addr;
    let first = *ids.first().ok_or("no running operations to wait for")?;

    let probe = ctx.rt.block_on(async move {
        let mut conn = Conn::new(addr);
        tokio::time::timeout(Duration::from_secs(10), conn.send(workload::wait(first, 1))).await
    });
    match probe {
        Ok(Ok((StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED, _))) => {
            server.stop();
            return Ok(Entry::Skipped("wait endpoint not available".into()));
        }
        Ok(Ok((s, _))) if s.is_success() => {}
        other => return Err(format!("wait probe failed: {other:?}")),
    }
    // What opsd holds before any waiter: the rest of its peak is the waiters'.
    let before = server.rss_mb();

    let times = Arc::new(Times::new(n));
    let ids = Arc::new(ids);
    let bound = Duration::from_secs(2 * wait_timeout_s(n));
    // The timeout is made inside the runtime: its timer needs one.
    let run = ctx.rt.block_on({
        let (ids, times) = (ids.clone(), times.clone());
        async move { tokio::time::timeout(bound, run(addr, ids, times)).await }
    });
    let peak = server.stop();
    let (connected, failures, first_error) =
        run.map_err(|_| "wait_wakeup exceeded its bound")??;

    let Tally {
        from_ack: hist,
        from_sent,
        released,
        premature,
        window_s,
    } = times.tally(n);
    let q = |h: &hdrhistogram::Histogram<u64>, q: f64| r3(h.value_at_quantile(q) as f64 / 1000.0);
    let mut o = Outcome {
        ops_per_s: if window_s > 0.0 {
            r3(released as f64 / window_s)
        } else {
            0.0
        },
        p50_ms: q(&hist, 0.5),
        p99_ms: q(&hist, 0.99),
        peak_rss_mb: peak.map(r3),
        connections: n + WRITERS,
        errors: failures + premature,
        first_error,
        ..Outcome::default()
    };
    let released_all = released == n as u64 && o.p99_ms <= 100.0;
    if n == RSS_TARGET_WAITERS {
        o.target = format!(
            "p99 release ≤ 100 ms (from the write's acknowledgement); peak RSS ≤ \
             {RSS_TARGET_MB:.0} MiB at {RSS_TARGET_WAITERS} waiters"
        );
        o.met = Some(released_all && peak.is_some_and(|p| p <= RSS_TARGET_MB));
    } else {
        o.target = "p99 release ≤ 100 ms (from the write's acknowledgement); peak RSS \
                    reported"
            .into();
        o.met = Some(released_all);
    }
    o.extra("waiters", n);
    if n < wanted {
        o.extra("waiters_wanted", wanted);
        o.extra("open_files_limit", limit);
    }
    if let (Some(before), Some(peak)) = (before, peak) {
        o.extra("rss_before_waiters_mb", r3(before));
        o.extra(
            "rss_per_waiter_kib",
            r3((peak - before) * 1024.0 / n.max(1) as f64),
        );
    }
    o.extra("waiters_connected", connected);
    o.extra("released", released);
    o.extra("premature", premature);
    o.extra("release_from_write_sent_p50_ms", q(&from_sent, 0.5));
    o.extra("release_from_write_sent_p99_ms", q(&from_sent, 0.99));
    o.extra("release_max_ms", q(&hist, 1.0));
    Ok(Entry::Done(Box::new(o)))
}

/// Connects every waiter, lets the server register them, then finishes the operations.
/// Returns (waiters connected, failed requests, one failure).
async fn run(
    addr: std::net::SocketAddr,
    ids: Arc<Vec<uuid::Uuid>>,
    times: Arc<Times>,
) -> Result<(usize, u64, Option<String>), String> {
    let timeout_s = wait_timeout_s(ids.len());
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut waiters = JoinSet::new();
    for i in 0..ids.len() {
        let (ids, times, connecting, connected) = (
            ids.clone(),
            times.clone(),
            connecting.clone(),
            connected.clone(),
        );
        // Past one source address's ephemeral ports, 127.0.0.2, .3, … (all loopback).
        let source = std::net::Ipv4Addr::new(127, 0, 0, 1 + (i / PER_SOURCE) as u8);
        waiters.spawn(async move {
            let mut conn = if i < PER_SOURCE || !addr.ip().is_loopback() {
                Conn::new(addr)
            } else {
                Conn::from_source(addr, source.into())
            };
            {
                let _permit = connecting.acquire().await.map_err(|e| e.to_string())?;
                conn.open().await?;
            }
            connected.fetch_add(1, Ordering::Relaxed);
            wait_until_done(&mut conn, &ids, i, timeout_s, &times).await
        });
    }
    // All connected, then a pause so that every request has reached the server.
    let deadline = Instant::now() + Duration::from_secs(timeout_s / 2);
    while connected.load(Ordering::Relaxed) < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = connected.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = JoinSet::new();
    for _ in 0..WRITERS {
        let (ids, times, next) = (ids.clone(), times.clone(), next.clone());
        writers.spawn(async move {
            let mut conn = Conn::new(addr);
            let mut failures = (0u64, None);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = ids.get(i) else { break };
                times.stamp(&times.write_sent, i);
                match conn.send(workload::finish(*id, 2)).await {
                    Ok((s, _)) if s.is_success() => times.stamp(&times.write_acked, i),
                    other => {
                        failures.0 += 1;
                        failures.1.get_or_insert(format!("write: {other:?}"));
                    }
                }
            }
            failures
        });
    }
    let (mut failed, mut first_error) = (0u64, None);
    while let Some(w) = writers.join_next().await {
        let (n, e) = w.map_err(|e| e.to_string())?;
        failed += n;
        first_error = first_error.or(e);
    }
    while let Some(w) = waiters.join_next().await {
        if let Ok(Err(e)) = w {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    Ok((ready, failed, first_error))
}
