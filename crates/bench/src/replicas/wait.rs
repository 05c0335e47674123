//! `wait_wakeup` across replicas: `plan.waiters` clients each park a
//! `GET /v1/operations/{id}/wait` on its own connection to a replica other than the
//! writers' (dealt round-robin over replicas 2..N; with one replica, the same one), and
//! once every replica's `opsd_waiters` gauge shows them all parked, 64 producers finish
//! those operations with PATCH through replica 1. A waiter's release latency is the time
//! from its write's acknowledgement by replica 1 to its own answer from another replica:
//! the commit, PostgreSQL's NOTIFY, the other replica's read of the change and the
//! answer. Target: p99 ≤ 100 ms.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::ctx::Ctx;
use crate::loadgen::{Conn, Stats};
use crate::replicas::{Cluster, Row};
use crate::wait::{Tally, Times, wait_until_done};
use crate::workload;

/// The wait timeout asked of the server; the whole scenario is bounded by twice that.
const WAIT_TIMEOUT_S: u64 = 60;
/// Connections opened at once (the servers' accept backlogs are finite).
const CONNECTING: usize = 256;
const WRITERS: usize = 64;
/// How long the waiters may take to be parked on their replicas.
const PARK_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the scenario on `n` replicas.
pub fn wait_wakeup(ctx: &Ctx, n: usize) -> Result<Row, String> {
    let count = ctx.plan.waiters.min(ctx.template.running.len());
    let ids = Arc::new(ctx.template.running[..count].to_vec());
    let cluster = Cluster::start(ctx, "replicas-wait", n)?;
    let addrs = cluster.addrs();
    let writer = addrs[0];
    let parked_on: Vec<SocketAddr> = if n > 1 {
        addrs[1..].to_vec()
    } else {
        addrs.clone()
    };
    let times = Arc::new(Times::new(count));
    let bound = Duration::from_secs(2 * WAIT_TIMEOUT_S);
    let outcome = ctx.rt.block_on({
        let (ids, times, parked_on) = (ids.clone(), times.clone(), parked_on.clone());
        // The timeout is made inside the runtime: its timer needs one.
        async move { tokio::time::timeout(bound, run(writer, parked_on, ids, times)).await }
    });
    // None if a replica does not export the counter: reported as null, not as 0.
    let gaps = ctx.rt.block_on(async {
        let mut sum = Some(0.0);
        for addr in &parked_on {
            let gaps = gauge(*addr, "opsd_feed_gaps_total").await.ok();
            sum = sum.zip(gaps).map(|(a, b)| a + b);
        }
        sum
    });
    let peak = cluster.stop();
    let (writes, waiter_failures, first_error) =
        outcome.map_err(|_| "wait_wakeup exceeded its bound")??;

    let Tally {
        from_ack,
        released,
        premature,
        window_s,
        ..
    } = times.tally(count);
    let mut row = Row::new("wait_wakeup", n, count + WRITERS);
    row.ops_per_s = if window_s > 0.0 {
        released as f64 / window_s
    } else {
        0.0
    };
    // p50/p99 of this row are those of the writes through replica 1.
    row.p50_ms = writes.quantile_ms(0.5);
    row.p99_ms = writes.quantile_ms(0.99);
    row.add_errors(&writes);
    row.errors += waiter_failures + premature;
    row.first_error = row.first_error.take().or(first_error);
    let release_p99 = from_ack.value_at_quantile(0.99) as f64 / 1000.0;
    row.release_p99_ms = Some(release_p99);
    row.waiters = Some(count);
    row.met = Some(released == count as u64 && release_p99 <= 100.0);
    row.peak_rss_mb = peak;
    row.extra("released", released);
    row.extra("premature", premature);
    row.extra(
        "release_p50_ms",
        from_ack.value_at_quantile(0.5) as f64 / 1000.0,
    );
    row.extra("release_max_ms", from_ack.max() as f64 / 1000.0);
    row.extra("feed_gaps_on_waiter_replicas", gaps);
    row.extra(
        "placement",
        if n > 1 {
            format!("writes through replica 1, waiters on replicas 2..{n}")
        } else {
            "writes and waiters on the one replica".to_owned()
        },
    );
    Ok(row)
}

/// Parks every waiter, waits until the replicas report them parked, then finishes the
/// operations through `writer`. Returns the writes' stats, how many waiters failed and
/// one of their failures.
async fn run(
    writer: SocketAddr,
    parked_on: Vec<SocketAddr>,
    ids: Arc<Vec<uuid::Uuid>>,
    times: Arc<Times>,
) -> Result<(Stats, u64, Option<String>), String> {
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let mut waiters = JoinSet::new();
    for i in 0..ids.len() {
        let addr = parked_on[i % parked_on.len()];
        let (ids, times, connecting) = (ids.clone(), times.clone(), connecting.clone());
        waiters.spawn(async move {
            let mut conn = Conn::new(addr);
            {
                let _permit = connecting.acquire().await.map_err(|e| e.to_string())?;
                conn.open().await?;
            }
            wait_until_done(&mut conn, &ids, i, WAIT_TIMEOUT_S, &times).await
        });
    }
    wait_parked(&parked_on, ids.len()).await?;

    let next = Arc::new(AtomicUsize::new(0));
    // Every writer connection first reads an operation, and all start writing together:
    // the writes measure a warm replica, not its first connections and key lookups.
    let warm = Arc::new(Barrier::new(WRITERS));
    let mut writers = JoinSet::new();
    for _ in 0..WRITERS {
        let (ids, times, next, warm) = (ids.clone(), times.clone(), next.clone(), warm.clone());
        writers.spawn(async move {
            let mut conn = Conn::new(writer);
            let mut stats = Stats::empty();
            if let Err(e) = conn.send(workload::get(ids[0])).await {
                stats.first_error = Some(format!("warm-up read: {e}"));
            }
            warm.wait().await;
            let started = Instant::now();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = ids.get(i) else { break };
                times.stamp(&times.write_sent, i);
                let t0 = Instant::now();
                let outcome = conn.send(workload::finish(*id, 2)).await;
                let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                match &outcome {
                    Ok((s, _)) if s.is_success() => {
                        times.stamp(&times.write_acked, i);
                        stats.ok += 1;
                        stats.hist.saturating_record(micros.max(1));
                    }
                    other => {
                        stats.errors += 1;
                        stats
                            .first_error
                            .get_or_insert_with(|| format!("write: {other:?}"));
                    }
                }
            }
            stats.elapsed = started.elapsed();
            stats
        });
    }
    let mut writes = Stats::empty();
    while let Some(w) = writers.join_next().await {
        let s = w.map_err(|e| e.to_string())?;
        let elapsed = writes.elapsed.max(s.elapsed);
        writes = writes.combine(s);
        writes.elapsed = elapsed;
    }
    let (mut failed, mut first_error) = (0, None);
    while let Some(w) = waiters.join_next().await {
        if let Ok(Err(e)) = w {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    Ok((writes, failed, first_error))
}

/// Polls the replicas' `opsd_waiters` gauges until together they hold `n` waiters: a
/// write before its waiter is parked would measure a read, not a wake-up.
async fn wait_parked(replicas: &[SocketAddr], n: usize) -> Result<(), String> {
    let deadline = Instant::now() + PARK_TIMEOUT;
    loop {
        let mut parked = 0.0;
        for addr in replicas {
            parked += gauge(*addr, "opsd_waiters").await?;
        }
        if parked >= n as f64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {parked} of {n} waiters parked after {PARK_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of an unlabelled metric on `/metrics` of the replica at `addr`.
async fn gauge(addr: SocketAddr, name: &str) -> Result<f64, String> {
    let req = Request::get("/metrics")
        .header(hyper::header::HOST, "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let (status, body) = Conn::new(addr).send(req).await?;
    if !status.is_success() {
        return Err(format!("/metrics answered {status}"));
    }
    metric_value(&String::from_utf8_lossy(&body), name)
        .ok_or_else(|| format!("/metrics has no {name}"))
}

/// `name`'s value in OpenMetrics text (`name value` on a line of its own).
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    #[test]
    fn reads_an_unlabelled_metric() {
        let text = "# TYPE opsd_waiters gauge\nopsd_waiters_x 3\nopsd_waiters 42\n# EOF\n";
        assert_eq!(metric_value(text, "opsd_waiters"), Some(42.0));
        assert_eq!(metric_value(text, "opsd_feed_gaps_total"), None);
    }
}
