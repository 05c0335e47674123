//! `scale`: list_first_page p50 as the database grows (10k, 100k, 1M, 5M operations in the
//! full run). The database is seeded through the store (see `seed`) in steps; after
//! each step a fresh opsd, with its read cache off (`--read-cache-mib 0`: every list goes
//! to the database), serves it and two lists are timed open-loop at a low fixed rate (so
//! p50 is service time, not queueing):
//!
//! - `growing`: a project that grows with the database (operations are spread over 100
//!   projects, so it holds 1% of them; 90% pending) — how a tenant's own list ages;
//! - `fixed`: a project of 1,000 operations (fewer in smoke runs) that does not grow while the others do —
//!   whether other tenants' data slows a tenant down.
//!
//! On PostgreSQL the scenario has a database of its own, grown the same way, and its
//! size is `pg_database_size`. It is grown once: at every size, each round trip of the
//! run (`--pg-rtt`) gets a fresh opsd behind a fresh proxy in turn.
//!
//! The target (growth ≤ 1.5× from the smallest to the largest size) is judged on
//! `growing`, the harder of the two.

use std::sync::Arc;

use opsd_domain::Status;
use serde_json::json;
use uuid::Uuid;

use crate::ctx::{Ctx, LinkNotes};
use crate::loadgen::MakeReq;
use crate::outcome::{Outcome, r3};
use crate::seed::{self, Seeder};
use crate::server::Server;
use crate::workload::{self, new_operation};

const PROJECTS: u64 = 100;
const FIXED_PROJECT: &str = "scale-fixed";
const GROWING_PROJECT: &str = "scale-7";
const CONNS: usize = 4;

/// (operations, p50 ms of the growing project, p50 ms of the fixed project).
pub type ScalePoint = (u64, f64, f64);

/// What `scale` measured, plus what the run reports at top level.
pub struct ScaleRun {
    /// One per round trip of the run (`ctx.rtts`), with what its link measured at the
    /// largest size.
    pub outcomes: Vec<(Outcome, LinkNotes)>,
    /// Database bytes per million operations at the largest size.
    pub db_bytes_per_million_ops: f64,
    /// (writes, seconds) spent seeding.
    pub seeding: (u64, f64),
    /// (operations, p50 growing, p50 fixed) per size, for the chart; one list per round
    /// trip.
    pub points: Vec<Vec<ScalePoint>>,
}

/// Runs the scenario.
pub fn scale(ctx: &mut Ctx, seed_rt: &tokio::runtime::Runtime) -> Result<ScaleRun, String> {
    let dir = ctx.work.path().join("scale");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let db = ctx.backend.empty_db("scale")?;
    let place = crate::backend::place(&dir, db.as_ref());
    let fixed_ops = (ctx.plan.scale_sizes.first().copied().unwrap_or(0) / 10).clamp(10, 1_000);
    let mut total = 0u64;
    let (mut writes, mut secs) = (0u64, 0.0);
    let rtts = ctx.rtts.len();
    let mut points = vec![Vec::new(); rtts];
    let mut json_points = vec![Vec::new(); rtts];
    let mut last = vec![None; rtts];
    let mut peak_rss = vec![0.0f64; rtts];
    for &size in &ctx.plan.scale_sizes.clone() {
        let mut s = Seeder::open(place, seed_rt)?;
        seed_rt.block_on(async {
            if total == 0 {
                let fixed = s
                    .create(0..fixed_ops, |i| new_operation(FIXED_PROJECT, "fixed", i))
                    .await?;
                let every_other: Vec<Uuid> = fixed.iter().step_by(2).copied().collect();
                s.set_status(&every_other, Status::Running).await?;
            }
            let to = size.saturating_sub(fixed_ops).max(total);
            let ids = s
                .create(total..to, |i| {
                    new_operation(&format!("scale-{}", i % PROJECTS), "scale", i)
                })
                .await?;
            // One in ten running, the rest pending: the filter keeps 90% of a project.
            let running: Vec<Uuid> = ids.iter().step_by(10).copied().collect();
            s.set_status(&running, Status::Running).await?;
            total = to;
            Ok::<_, String>(())
        })?;
        writes += s.writes;
        secs += s.elapsed.as_secs_f64();
        eprintln!(
            "  scale: seeded {} operations ({} writes in {:.1} s so far)",
            total + fixed_ops,
            writes,
            secs
        );
        s.close(place)?;
        let ops = total + fixed_ops;
        for i in 0..rtts {
            let (measured, notes) = ctx.at_rtt(i, |ctx| {
                let url = db.as_ref().map(|db| ctx.db_url(db)).transpose()?;
                // Without the read cache: the same page polled again would be a cache hit,
                // and this scenario measures what a list costs the database as it grows.
                let server = Server::opsd_with_env(
                    &ctx.opsd,
                    &dir,
                    url.as_ref(),
                    &ctx.pinning,
                    &[("OPSD_READ_CACHE_MIB", "0")],
                )?;
                let growing = timed_list(ctx, &server, GROWING_PROJECT);
                let fixed = timed_list(ctx, &server, FIXED_PROJECT);
                let peak = server.stop().unwrap_or(0.0);
                Ok::<_, String>((growing, fixed, peak))
            })?;
            let (growing, fixed, peak) = measured?;
            peak_rss[i] = peak_rss[i].max(peak);
            let matching = ops.saturating_sub(fixed_ops) / PROJECTS * 9 / 10;
            let mut point = json!({
                "operations": ops,
                "growing_p50_ms": r3(growing.p50_ms), "growing_p99_ms": r3(growing.p99_ms),
                "growing_matching": matching,
                "fixed_p50_ms": r3(fixed.p50_ms), "fixed_p99_ms": r3(fixed.p99_ms),
                "fixed_matching": fixed_ops / 2,
                "errors": growing.errors + fixed.errors,
            });
            for (key, value) in notes.iter().filter(|(k, _)| *k != "proxy") {
                point[*key] = value.clone();
            }
            json_points[i].push(point);
            points[i].push((ops, growing.p50_ms, fixed.p50_ms));
            last[i] = Some((growing, fixed, notes));
        }
    }
    let db_bytes = match &db {
        Some(db) => db.bytes()?,
        None => seed::db_bytes(&dir),
    };
    let ops = total + fixed_ops;
    let mut outcomes = Vec::new();
    for (i, last) in last.into_iter().enumerate() {
        let (growing, fixed, notes) = last.ok_or("no scale sizes")?;
        let first = points[i].first().copied();
        let mut o = growing;
        o.errors += fixed.errors;
        o.peak_rss_mb = Some(r3(peak_rss[i]));
        let growth = o.p50_ms / first.map_or(f64::NAN, |p| p.1);
        o.target = format!(
            "p50 growth ≤ 1.5× from {} to {} operations (growing project)",
            first.map_or(0, |p| p.0),
            ops
        );
        o.met = growth.is_finite().then_some(growth <= 1.5);
        o.extra("growth", r3(growth));
        o.extra(
            "fixed_growth",
            r3(fixed.p50_ms / first.map_or(f64::NAN, |p| p.2)),
        );
        o.extra("points", std::mem::take(&mut json_points[i]));
        o.extra("db_bytes", db_bytes);
        outcomes.push((o, notes));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ScaleRun {
        outcomes,
        db_bytes_per_million_ops: r3(db_bytes as f64 / ops as f64 * 1e6),
        seeding: (writes, secs),
        points,
    })
}

/// The list's first page (project + `pending`), open loop at the plan's scale rate.
fn timed_list(ctx: &Ctx, server: &Server, project: &str) -> Outcome {
    let project = project.to_owned();
    let make: MakeReq = Arc::new(move |_| Some(workload::list(&project, "pending", 10, None)));
    let rate = ctx.plan.scale_rate;
    let stats = ctx.open(server.addr, CONNS, rate, ctx.plan.scale, make);
    let mut o = Outcome::from_phases(&stats, None, CONNS);
    o.open_loop_rate = Some(rate);
    o
}
