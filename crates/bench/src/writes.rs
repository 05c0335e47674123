//! Write scenarios, both durable (`synchronous=FULL` on SQLite, `synchronous_commit=on`
//! on PostgreSQL: acknowledged only after the group commit's fsync) and both divided by
//! the storage ceiling:
//! `create_durable` (POST creates, 64 at a time) and `transition` (PATCH running → done
//! with `If-Match`, 64 at a time, each operation once).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ctx::Ctx;
use crate::loadgen::{Limits, MakeReq};
use crate::outcome::{Outcome, r3};
use crate::workload;

/// Concurrent producers (the 64 the write targets are stated for).
const WRITE_CONNS: usize = 64;

/// `create_durable`. Target: ratio ≥ 0.6 of the storage ceiling, open-loop p99 ≤ 50 ms.
pub fn create_durable(ctx: &mut Ctx) -> Result<Outcome, String> {
    let (_dir, server) = ctx.fresh_opsd("create")?;
    let make = workload::creates("bench-create".into(), "create");
    let (closed, ceiling) =
        ctx.closed_vs_storage_ceiling(server.addr, WRITE_CONNS, make.clone(), WRITE_CONNS)?;
    let rate = closed.ops_per_s() * ctx.plan.open_fraction;
    let open = ctx.open(server.addr, WRITE_CONNS, rate, ctx.plan.write, make);
    let mut o = Outcome::from_phases(&closed, Some((&open, rate)), WRITE_CONNS);
    o.peak_rss_mb = server.stop().map(r3);
    o.with_ceiling(ceiling);
    ceiling_notes(ctx, &mut o);
    o.ratio_target(ctx.write_ratio_target(0.6), "storage");
    // And the open-loop p99 of 64 producers stays within 50 ms.
    o.target.push_str("; p99 ≤ 50 ms");
    o.met = o.met.map(|met| met && o.p99_ms <= 50.0);
    Ok(o)
}

/// `transition`. Target: ratio ≥ 0.7 of the storage ceiling.
pub fn transition(ctx: &mut Ctx) -> Result<Outcome, String> {
    let (_dir, server) = ctx.fresh_opsd("transition")?;
    let pool = ctx.template.running.clone();
    // Two thirds of the pool for the closed loop, the rest for the open loop: each
    // operation can be finished once.
    let closed_share = (pool.len() * 2 / 3) as u64;
    let next = Arc::new(AtomicUsize::new(0));
    let make: MakeReq = {
        let next = next.clone();
        Arc::new(move |_| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            pool.get(i).map(|id| workload::finish(*id, 2))
        })
    };
    let limits = Limits {
        max_requests: closed_share,
        ..ctx.plan.write
    };
    let closed = ctx.closed(server.addr, WRITE_CONNS, limits, make.clone());
    let rate = closed.ops_per_s() * ctx.plan.open_fraction;
    let open = ctx.open(server.addr, WRITE_CONNS, rate, ctx.plan.write, make);
    let mut o = Outcome::from_phases(&closed, Some((&open, rate)), WRITE_CONNS);
    o.peak_rss_mb = server.stop().map(r3);
    o.extra("operations_finished", next.load(Ordering::Relaxed));
    if open.ok > 0 && open.ops_per_s() < rate * 0.9 {
        o.extra(
            "note",
            "the pool of running operations ran out during the open-loop phase",
        );
    }
    storage_ratio(ctx, &mut o)?;
    Ok(o)
}

fn storage_ratio(ctx: &mut Ctx, o: &mut Outcome) -> Result<(), String> {
    o.with_ceiling(ctx.storage_ceiling(WRITE_CONNS)?);
    ceiling_notes(ctx, o);
    o.ratio_target(ctx.write_ratio_target(0.7), "storage");
    Ok(())
}

/// How the storage ceiling was measured (its batch; on PostgreSQL both ways and which won).
fn ceiling_notes(ctx: &Ctx, o: &mut Outcome) {
    for (key, value) in &ctx.at.storage_ceiling_notes {
        o.extra(key, value.clone());
    }
}
