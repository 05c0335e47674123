//! `get_by_id`, `list_first_page` and `create_durable` over N replicas: the requests,
//! connections (32 for reads, 64 for creates) and phases of the single-server scenarios
//! (closed loop for throughput, then open loop for p50/p99), with the connections spread
//! over the replicas. The comparison here is 1 against N replicas; creates are also set
//! against the storage ceiling (`with_storage_ceiling`), since where the database link is
//! the limit (a round trip above zero) the question is whether every count gets near it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::loadgen::{self, Limits, MakeReq, Stats};
use crate::replicas::{Cluster, Row};
use crate::template::LIST_PROJECT;
use crate::workload;

/// Connections of the read scenarios, as in the single-server ones.
const READ_CONNS: usize = 32;
/// Connections of `create_durable`, as in the single-server one.
const WRITE_CONNS: usize = 64;

/// Measures scenario `name` on `n` replicas. `rate` is the open-loop rate: unset on the
/// first call (1 replica), which sets it to `plan.open_fraction` of its throughput.
pub fn measure(ctx: &Ctx, name: &str, n: usize, rate: &mut Option<f64>) -> Result<Row, String> {
    let (conns, limits, make) = scenario(ctx, name, n)?;
    let cluster = Cluster::start(ctx, &format!("replicas-{name}"), n)?;
    let addrs = cluster.addrs();
    // One request per replica first: proves each answers with the shared key.
    for addr in &addrs {
        ctx.fetch(*addr, workload::get(ctx.template.all[0]))
            .map_err(|e| format!("replica at {addr}: {e}"))?;
    }
    warm_up(ctx, &addrs, conns)?;
    if name == "get_by_id" {
        read_every_id_on_each(ctx, &addrs)?;
    }
    let closed = spread(ctx, &addrs, conns, limits, make.clone(), None);
    if closed.ok == 0 {
        return Err(format!(
            "no request was answered in the measured time ({} failed: {:?})",
            closed.errors, closed.first_error
        ));
    }
    let rate = *rate.get_or_insert(closed.ops_per_s() * ctx.plan.open_fraction);
    let open = spread(ctx, &addrs, conns, limits, make, Some(rate));
    let peak = cluster.stop();
    let mut row = Row::new(name, n, conns);
    row.ops_per_s = closed.ops_per_s();
    row.p50_ms = open.quantile_ms(0.5);
    row.p99_ms = open.quantile_ms(0.99);
    row.open_loop_rate = Some(rate);
    row.peak_rss_mb = peak;
    row.add_errors(&closed);
    row.add_errors(&open);
    Ok(row)
}

/// Reads over every connection until each replica's database pool has grown to the
/// load: a pool opens connections on demand, and opening one (SCRAM authentication) is
/// slow enough in a debug build to take the whole of a smoke run's short phases.
fn warm_up(ctx: &Ctx, addrs: &[SocketAddr], conns: usize) -> Result<(), String> {
    let ids = ctx.template.all.clone();
    let make: MakeReq = Arc::new(move |rng| Some(workload::get(ids[rng.below(ids.len())])));
    let limits = Limits {
        warmup: Duration::ZERO,
        duration: Duration::from_secs(60),
        max_requests: 4 * conns as u64,
    };
    let warm = spread(ctx, addrs, conns, limits, make, None);
    match warm.errors {
        0 => Ok(()),
        n => Err(format!("{n} warm-up reads failed: {:?}", warm.first_error)),
    }
}

/// `row` (creates) with the storage ceiling at the same round trip: raw batched inserts
/// of the single-server `create_durable`, through the same proxy. Measured on the first
/// call at each round trip (after the 1-replica row's processes stopped) and kept.
pub fn with_storage_ceiling(ctx: &mut Ctx, mut row: Row) -> Result<Row, String> {
    row.storage_ceiling = Some(ctx.storage_ceiling(WRITE_CONNS)?);
    for (key, value) in &ctx.at.storage_ceiling_notes {
        row.extra(key, value.clone());
    }
    Ok(row)
}

/// Every operation read once through each replica, unmeasured, as the single-server
/// `get_by_id` reads each once first: behind a round-robin balancer every replica of a
/// cluster that has run a while has served (and cached) every polled operation. Without
/// it the rows measured the replicas' read caches filling, one per replica.
fn read_every_id_on_each(ctx: &Ctx, addrs: &[SocketAddr]) -> Result<(), String> {
    for addr in addrs {
        let every = workload::each_once(ctx.template.all.clone(), workload::get);
        let read = ctx.closed(*addr, READ_CONNS, Limits::UNTIL_DONE, every);
        if read.errors > 0 {
            return Err(format!(
                "{} reads of every operation failed at {addr}: {:?}",
                read.errors, read.first_error
            ));
        }
    }
    Ok(())
}

/// The connections, limits and requests of scenario `name`.
fn scenario(ctx: &Ctx, name: &str, n: usize) -> Result<(usize, Limits, MakeReq), String> {
    Ok(match name {
        "get_by_id" => {
            let ids = ctx.template.all.clone();
            let make: MakeReq = Arc::new(move |rng| Some(workload::get(ids[rng.below(ids.len())])));
            (READ_CONNS, ctx.plan.read, make)
        }
        "list_first_page" => {
            let make: MakeReq =
                Arc::new(|_| Some(workload::list(LIST_PROJECT, "pending", 10, None)));
            (READ_CONNS, ctx.plan.read, make)
        }
        "create_durable" => {
            let make = workload::creates(format!("bench-create-{n}"), "create");
            (WRITE_CONNS, ctx.plan.write, make)
        }
        other => return Err(format!("{other} has no replica variant")),
    })
}

/// One load phase over every replica at once: `conns` connections dealt round-robin
/// (replica `i` gets connections `i`, `i + N`, …), closed loop, or open loop at `rate`
/// requests/s in total (each replica's share in proportion to its connections).
/// The phases run concurrently; their stats add up over the same wall time.
pub fn spread(
    ctx: &Ctx,
    addrs: &[SocketAddr],
    conns: usize,
    limits: Limits,
    make: MakeReq,
    rate: Option<f64>,
) -> Stats {
    let phases = addrs.iter().enumerate().map(|(i, addr)| {
        let share = shares(conns, addrs.len())[i];
        let make = make.clone();
        async move {
            match rate {
                None => loadgen::closed_loop(*addr, share, limits, make).await,
                Some(r) => {
                    let r = r * share as f64 / conns as f64;
                    loadgen::open_loop(*addr, share, r, limits, make).await
                }
            }
        }
    });
    let all = ctx.rt.block_on(futures_util::future::join_all(phases));
    let elapsed = all
        .iter()
        .map(|s| s.elapsed)
        .max()
        .unwrap_or(Duration::ZERO);
    let mut total = all.into_iter().fold(Stats::empty(), Stats::combine);
    // Concurrent phases: their wall time is the longest one's, not the sum.
    total.elapsed = elapsed;
    total
}

/// How many of `conns` connections each of `n` replicas gets, dealt round-robin.
fn shares(conns: usize, n: usize) -> Vec<usize> {
    let n = n.max(1);
    (0..n)
        .map(|i| conns / n + usize::from(i < conns % n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_dealt_round_robin() {
        assert_eq!(shares(32, 1), vec![32]);
        assert_eq!(shares(32, 2), vec![16, 16]);
        assert_eq!(shares(64, 3), vec![22, 21, 21]);
        assert_eq!(shares(64, 3).iter().sum::<usize>(), 64);
    }
}
