//! Read scenarios: `get_by_id`, `google_get`, `list_first_page`, `list_deep_page`. Each measures
//! throughput closed-loop (the most opsd serves with that many connections), then
//! latency open-loop at a fraction of that throughput (so p50/p99 are what a caller
//! sees at a steady load, not the length of a saturated queue), then the HTTP ceiling
//! with the same requests, connections and response bytes.

use std::sync::Arc;

use serde_json::Value;

use crate::ctx::{Ctx, ROUNDS};
use crate::loadgen::{Limits, MakeReq, Stats};
use crate::outcome::{Outcome, r3};
use crate::template::LIST_PROJECT;
use crate::workload;

/// Connections of the read scenarios (get_by_id's target is stated for 32; lists use the same).
const READ_CONNS: usize = 32;
/// The list filter of both list scenarios: project + status.
const LIST_STATUS: &str = "pending";
const PAGE: usize = 10;

/// `get_by_id`: random existing ids, against a server that has read each once (a
/// server that has run a while; a fresh one spends the first tens of thousands of reads
/// filling its read cache, which is warm-up, not service). Target: ratio ≥ 0.6 of the
/// HTTP ceiling.
pub fn get_by_id(ctx: &Ctx) -> Result<Outcome, String> {
    let ids = ctx.template.all.clone();
    let warm = workload::each_once(ids.clone(), workload::get);
    let make: MakeReq = Arc::new(move |rng| Some(workload::get(ids[rng.below(ids.len())])));
    let (mut o, body) = measure(ctx, "get_by_id", make, Some(warm))?;
    o.ratio_target(0.6, "HTTP");
    o.extra("response_bytes", body.len());
    Ok(o)
}

/// `google_get`: Deployment Manager's `operations.get`, which its clients poll, of random
/// operations of the list project, against a server that has read each once, as
/// `get_by_id`. The body is pretty-printed, as Google's servers answer by default. No
/// target of its own: it shows what the read cache does for that dialect's polls, to be
/// compared with `get_by_id` of the same run (its path does more per request: two
/// names to check, the query's standard parameters, a `selfLink` from the `Host`).
pub fn google_get(ctx: &Ctx) -> Result<Outcome, String> {
    let ids = ctx.template.listed.clone();
    let read = |id| workload::google_get(LIST_PROJECT, id);
    let warm = workload::each_once(ids.clone(), read);
    let make: MakeReq = Arc::new(move |rng| Some(read(ids[rng.below(ids.len())])));
    let (mut o, body) = measure(ctx, "google_get", make, Some(warm))?;
    o.target = "none: reported (compare with get_by_id of the same run)".into();
    o.extra("response_bytes", body.len());
    Ok(o)
}

/// `list_first_page`: limit 10 with a project + status filter. Target: ratio ≥ 0.3.
pub fn list_first_page(ctx: &mut Ctx) -> Result<Outcome, String> {
    let make: MakeReq = Arc::new(|_| Some(first_page()));
    let (mut o, body) = measure(ctx, "list-first", make, None)?;
    o.ratio_target(0.3, "HTTP");
    o.extra("response_bytes", body.len());
    o.extra("matching", total_count(&body));
    if let Some(rate) = o.open_loop_rate {
        ctx.at.first_page = Some((rate, o.p50_ms));
    }
    Ok(o)
}

fn first_page() -> crate::loadgen::Req {
    workload::list(LIST_PROJECT, LIST_STATUS, PAGE, None)
}

/// `list_deep_page`: the same list from a cursor `plan.deep` items in. Its p50 is
/// compared with the first page's measured on the same server in alternating open-loop
/// rounds at the same rate (list_first_page's open-loop rate), so that machine noise
/// hits both alike. Target: p50 ≤ 1.2 × list_first_page p50.
pub fn list_deep_page(ctx: &Ctx) -> Result<Outcome, String> {
    let (_dir, server) = ctx.fresh_opsd("list-deep")?;
    // Walk to the depth with pages of 100 (a cursor is valid for any page size).
    let mut cursor: Option<String> = None;
    for _ in 0..ctx.plan.deep.div_ceil(100) {
        let page = ctx.fetch(
            server.addr,
            workload::list(LIST_PROJECT, LIST_STATUS, 100, cursor.as_deref()),
        )?;
        cursor = next_cursor(&page);
        if cursor.is_none() {
            return Err(format!("the list ended before {} items", ctx.plan.deep));
        }
    }
    let cursor = cursor.ok_or("no cursor")?;
    let deep_page = ctx.fetch(
        server.addr,
        workload::list(LIST_PROJECT, LIST_STATUS, PAGE, Some(&cursor)),
    )?;
    let items = items(&deep_page);
    if items != PAGE {
        return Err(format!("the deep page has {items} items, not {PAGE}"));
    }
    let make: MakeReq = Arc::new(move |_| {
        Some(workload::list(
            LIST_PROJECT,
            LIST_STATUS,
            PAGE,
            Some(&cursor),
        ))
    });
    let closed = ctx.closed(server.addr, READ_CONNS, ctx.plan.read, make.clone());
    let rate = ctx
        .at
        .first_page
        .map_or(closed.ops_per_s() * ctx.plan.open_fraction, |f| f.0);
    let round = Limits {
        warmup: ctx.plan.read.warmup / 2,
        duration: ctx.plan.read.duration / ROUNDS,
        ..ctx.plan.read
    };
    let first: MakeReq = Arc::new(|_| Some(first_page()));
    let (mut deep, mut shallow) = (Stats::empty(), Stats::empty());
    for _ in 0..ROUNDS {
        deep = deep.combine(ctx.open(server.addr, READ_CONNS, rate, round, make.clone()));
        shallow = shallow.combine(ctx.open(server.addr, READ_CONNS, rate, round, first.clone()));
    }
    let mut o = Outcome::from_phases(&closed, Some((&deep, rate)), READ_CONNS);
    o.add_errors(&shallow);
    cache_hit_ratio(ctx, server.addr, &mut o, (0.0, 0.0));
    o.peak_rss_mb = server.stop().map(r3);
    let first_p50 = shallow.quantile_ms(0.5);
    o.target = "p50 ≤ 1.2 × list_first_page p50 (same server, same open-loop rate)".into();
    o.met = Some(o.p50_ms <= 1.2 * first_p50);
    o.extra("first_page_p50_ms", r3(first_p50));
    o.extra("p50_vs_first_page", r3(o.p50_ms / first_p50));
    o.extra("depth_items", ctx.plan.deep);
    o.extra("response_bytes", deep_page.len());
    Ok(o)
}

/// Against a fresh opsd: the `warm` requests if any (unmeasured, until they run out), one
/// request (its answer is the ceiling's body), closed loop alternating with the HTTP
/// ceiling, then the open loop. Returns the outcome and body.
fn measure(
    ctx: &Ctx,
    name: &str,
    make: MakeReq,
    warm: Option<MakeReq>,
) -> Result<(Outcome, Vec<u8>), String> {
    let (_dir, server) = ctx.fresh_opsd(name)?;
    let warmed = match warm {
        Some(warm) => {
            ctx.closed(server.addr, READ_CONNS, Limits::UNTIL_DONE, warm);
            cache_counts(ctx, server.addr)
        }
        None => (0.0, 0.0),
    };
    let mut rng = crate::loadgen::Rng::new(99);
    let req = make(&mut rng).ok_or("no request")?;
    let body = ctx.fetch(server.addr, req)?.to_vec();
    let (closed, ceiling) =
        ctx.closed_vs_http_ceiling(server.addr, &body, READ_CONNS, make.clone())?;
    let rate = closed.ops_per_s() * ctx.plan.open_fraction;
    let open = ctx.open(server.addr, READ_CONNS, rate, ctx.plan.read, make);
    let mut o = Outcome::from_phases(&closed, Some((&open, rate)), READ_CONNS);
    o.with_ceiling(ceiling);
    cache_hit_ratio(ctx, server.addr, &mut o, warmed);
    o.peak_rss_mb = server.stop().map(r3);
    Ok((o, body))
}

/// Adds the share of the server's reads its read cache answered since `before` (hits,
/// misses: a warm pass is left out, its own warm-up included), from its `/metrics`, so
/// that results say what a cache did for them.
fn cache_hit_ratio(ctx: &Ctx, addr: std::net::SocketAddr, o: &mut Outcome, before: (f64, f64)) {
    let (hits, misses) = cache_counts(ctx, addr);
    let (hits, misses) = (hits - before.0, misses - before.1);
    if hits + misses > 0.0 {
        o.extra("cache_hit_ratio", r3(hits / (hits + misses)));
    }
}

/// The read cache's (hits, misses) so far, from the server's `/metrics`.
fn cache_counts(ctx: &Ctx, addr: std::net::SocketAddr) -> (f64, f64) {
    let Ok(text) = ctx.fetch(addr, workload::metrics()) else {
        return (0.0, 0.0);
    };
    let text = String::from_utf8_lossy(&text);
    let counter = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    (
        counter("opsd_read_cache_hits_total"),
        counter("opsd_read_cache_misses_total"),
    )
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn next_cursor(body: &[u8]) -> Option<String> {
    parse(body)["pagination"]["next_cursor"]
        .as_str()
        .map(str::to_owned)
}

fn items(body: &[u8]) -> usize {
    parse(body)["items"].as_array().map_or(0, Vec::len)
}

fn total_count(body: &[u8]) -> u64 {
    parse(body)["pagination"]["total_count"]
        .as_u64()
        .unwrap_or(0)
}
