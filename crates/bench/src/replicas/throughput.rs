//! `get_by_id`, `list_first_page` and `create_durable` over 1 and N replicas: the
//! requests, connections (32 for reads, 64 for creates) and phases of the single-server
//! scenarios (closed loop for throughput, then open loop for p50/p99), with the
//! connections spread over the replicas. The comparison here is 1 against N replicas, so
//! both clusters run side by side (each on a fresh copy of the template, idle while the
//! other is measured) and their closed loops alternate in rounds, as opsd and a ceiling
//! do in the single-server run: a shared machine that slows down for a while slows both
//! counts alike, rather than whichever ran then. Creates are also set against the storage
//! ceiling at the same round trip, measured in rounds of its own between theirs, since
//! where the database link is the limit (a round trip above zero) the question is
//! whether every count gets near it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::ctx::{Ctx, ROUNDS, round_of};
use crate::loadgen::{self, Limits, MakeReq, Stats};
use crate::replicas::{Cluster, Row};
use crate::template::LIST_PROJECT;
use crate::workload;

/// Connections of the read scenarios, as in the single-server ones.
const READ_CONNS: usize = 32;
/// Connections of `create_durable`, as in the single-server one.
const WRITE_CONNS: usize = 64;

/// One replica count's cluster and what was measured on it so far.
struct Side {
    n: usize,
    cluster: Cluster,
    make: MakeReq,
    closed: Stats,
    /// Each round's closed-loop requests/s, in order (the spread within the run).
    rounds: Vec<f64>,
}

/// Measures scenario `name` on each of `counts` replicas (the first is the baseline,
/// whose throughput sets the open-loop rate of every count); a row per count, in order.
pub fn measure(ctx: &mut Ctx, name: &str, counts: &[usize]) -> Result<Vec<Row>, String> {
    let (conns, limits) = connections_and_limits(ctx, name)?;
    let mut sides = Vec::with_capacity(counts.len());
    for &n in counts {
        let cluster = Cluster::start(ctx, &format!("replicas-{name}-{n}"), n)?;
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
        let make = requests(ctx, name, n);
        sides.push(Side {
            n,
            cluster,
            make,
            closed: Stats::empty(),
            rounds: Vec::new(),
        });
    }
    // Each round runs every count once, in turns that alternate (1, N; then N, 1; …),
    // so that neither count always follows the storage ceiling's round or the other.
    // The first round warms each cluster up with the scenario's own requests for the
    // whole warm-up (the reads above left its write path cold); later rounds, half.
    let mut turn = 0;
    let mut round_of_each = |ctx: &Ctx, round: Limits| {
        let round = match turn {
            0 => Limits {
                warmup: limits.warmup,
                ..round
            },
            _ => round,
        };
        for i in turns(turn, sides.len()) {
            let side = &mut sides[i];
            side.cluster.use_key()?;
            let this = spread(
                ctx,
                &side.cluster.addrs(),
                conns,
                round,
                side.make.clone(),
                None,
            );
            side.rounds.push(crate::outcome::r3(this.ops_per_s()));
            side.closed.add(this);
        }
        turn += 1;
        Ok::<(), String>(())
    };
    let ceiling = if name == "create_durable" {
        Some(ctx.alternating_with_storage_ceiling(WRITE_CONNS, &mut round_of_each)?)
    } else {
        for _ in 0..ROUNDS {
            round_of_each(ctx, round_of(limits))?;
        }
        None
    };
    let first = sides.first().ok_or("no replica count to measure")?;
    let rate = first.closed.ops_per_s() * ctx.plan.open_fraction;
    let mut rows = Vec::with_capacity(sides.len());
    for side in sides {
        let Side {
            n,
            cluster,
            make,
            closed,
            rounds,
        } = side;
        if closed.ok == 0 {
            return Err(format!(
                "no request was answered on {n} replica(s) in the measured time ({} failed: {:?})",
                closed.errors, closed.first_error
            ));
        }
        cluster.use_key()?;
        let open = spread(ctx, &cluster.addrs(), conns, limits, make, Some(rate));
        let mut row = Row::new(name, n, conns);
        row.ops_per_s = closed.ops_per_s();
        row.p50_ms = open.quantile_ms(0.5);
        row.p99_ms = open.quantile_ms(0.99);
        row.open_loop_rate = Some(rate);
        row.peak_rss_mb = cluster.stop();
        row.add_errors(&closed);
        row.add_errors(&open);
        row.extra("rounds_ops_per_s", rounds);
        row.storage_ceiling = ceiling;
        if ceiling.is_some() {
            for (key, value) in &ctx.at.storage_ceiling_notes {
                row.extra(key, value.clone());
            }
        }
        rows.push(row);
    }
    Ok(rows)
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

/// The connections and limits of scenario `name`.
fn connections_and_limits(ctx: &Ctx, name: &str) -> Result<(usize, Limits), String> {
    match name {
        "get_by_id" | "list_first_page" => Ok((READ_CONNS, ctx.plan.read)),
        "create_durable" => Ok((WRITE_CONNS, ctx.plan.write)),
        other => Err(format!("{other} has no replica variant")),
    }
}

/// The requests of scenario `name` (one of [`connections_and_limits`]'s) on `n` replicas.
fn requests(ctx: &Ctx, name: &str, n: usize) -> MakeReq {
    match name {
        "get_by_id" => {
            let ids = ctx.template.all.clone();
            Arc::new(move |rng| Some(workload::get(ids[rng.below(ids.len())])))
        }
        "list_first_page" => Arc::new(|_| Some(workload::list(LIST_PROJECT, "pending", 10, None))),
        _ => workload::creates(format!("bench-create-{n}"), "create"),
    }
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

/// The order in which round `turn` measures `n` sides: forward on even rounds, backward
/// on odd ones.
fn turns(turn: usize, n: usize) -> Vec<usize> {
    if turn.is_multiple_of(2) {
        (0..n).collect()
    } else {
        (0..n).rev().collect()
    }
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
    fn rounds_take_turns_in_alternating_order() {
        assert_eq!(turns(0, 2), vec![0, 1]);
        assert_eq!(turns(1, 2), vec![1, 0]);
        assert_eq!(turns(2, 2), vec![0, 1]);
    }

    #[test]
    fn connections_are_dealt_round_robin() {
        assert_eq!(shares(32, 1), vec![32]);
        assert_eq!(shares(32, 2), vec![16, 16]);
        assert_eq!(shares(64, 3), vec![22, 21, 21]);
        assert_eq!(shares(64, 3).iter().sum::<usize>(), 64);
    }
}
