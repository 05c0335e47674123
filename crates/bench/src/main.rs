//! `opsd-bench`: opsd's benchmark harness (run it through `scripts/bench`). This file
//! checks the flags (`cli`) and hands the run to `setup` and then `scenarios` or
//! `replicas`, or runs a subcommand.
//!
//! Every scenario starts a fresh `opsd serve` on a copy of a seeded data directory
//! (`template`), drives it with the load generator in `loadgen`, and divides what it got
//! by a ceiling measured in the same run with the same load (`ceiling_servers`,
//! `storage_ceiling`): numbers on a shared 2-core machine are noisy, ratios much less so.
//! With `--backend postgres` the same scenarios run against `opsd serve --database-url
//! …`, each on its own copy of a seeded database (`pg`), and the storage ceiling is
//! PostgreSQL's (`storage_ceiling_pg`). Read in this order: `plan` (sizes per mode),
//! `loadgen`, the ceilings, `seed`, `template` and `ctx`, then `scenarios` and the
//! scenarios it runs (`reads`, `grpc`, `writes`, `wait`, `backup`, `scale`), then
//! `report` and `charts`. `--replicas N` runs the scenarios of `replicas` instead: 1 and
//! N opsd processes on one database. On PostgreSQL every scenario runs at each round
//! trip of `--pg-rtt` in turn, behind a delaying proxy above zero (`link`);
//! `opsd-bench proxy` runs that proxy on its own (`proxy`).

mod backend;
mod backup;
mod ceiling_servers;
mod charts;
mod cli;
mod ctx;
mod grpc;
mod link;
mod loadgen;
mod machine;
mod otlp_sink;
mod outcome;
mod pg;
mod plan;
mod proxy;
mod reads;
mod replicas;
mod report;
mod scale;
mod scenarios;
mod seed;
mod server;
mod setup;
mod soak;
mod storage_ceiling;
mod storage_ceiling_pg;
mod template;
mod wait;
mod workload;
mod writes;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::backend::Backend;
use crate::cli::{BackendName, Cli, Command};
use crate::plan::Plan;
use crate::report::SCENARIOS;
use crate::template::{LIST_PROJECT, RUN_PROJECT, Template};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::CeilingHttp { body_file }) => ceiling_servers::serve_http(body_file),
        Some(Command::CeilingGrpc { body_file }) => ceiling_servers::serve_grpc(body_file),
        Some(Command::Soak { opsd, duration }) => soak::run(opsd, *duration),
        Some(Command::OtlpSink { listen, every }) => otlp_sink::serve(*listen, *every),
        Some(Command::Proxy {
            listen,
            upstream,
            rtt,
            control,
            every,
        }) => proxy::run(*listen, upstream, *rtt, *control, *every),
        None => run(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("opsd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The benchmark (no subcommand): checks the arguments, gets the run ready (`setup`),
/// then runs the single-server scenarios (`scenarios`) or, with `--replicas`, those of
/// `replicas`.
fn run(cli: &Cli) -> Result<(), String> {
    let started = Instant::now();
    let plan = match cli.backend {
        BackendName::Sqlite => Plan::new(cli.mode),
        BackendName::Postgres => Plan::new(cli.mode).for_postgres(cli.mode),
    };
    let known: &[&str] = match cli.replicas {
        Some(_) => &replicas::SCENARIOS,
        None => &SCENARIOS,
    };
    if let Some(bad) = cli.only.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(format!(
            "unknown scenario {bad}; known: {}",
            known.join(", ")
        ));
    }
    check_replicas(cli)?;
    let (rtts, upstream) = rtts(cli)?;
    let setup::Prepared {
        ctx,
        machine,
        seed_rt,
    } = setup::prepare(cli, plan, rtts, upstream)?;
    let seeding = template_note(&ctx.plan, &ctx.backend, &ctx.template);
    match cli.replicas {
        Some(max) => replicas::run(cli, ctx, max, machine, seeding, started),
        None => scenarios::run(cli, ctx, &seed_rt, machine, seeding, started),
    }
}

/// How the template was seeded and what each scenario does with it, as both reports
/// say it.
fn template_note(plan: &Plan, backend: &Backend, template: &Template) -> String {
    let (through, in_flight, copies) = match backend {
        Backend::Sqlite => (
            "opsd_store_sqlite::SqliteStore",
            "1,024",
            "copies it to a fresh data directory",
        ),
        Backend::Postgres(_) => (
            "opsd_store_open::open (the PostgreSQL store)",
            "1,024",
            "gets a copy of it (CREATE DATABASE … TEMPLATE)",
        ),
    };
    format!(
        "API scenarios start from one template database seeded in-process through \
         {through} (opsd's own group-commit write path, {in_flight} writes \
         in flight): {} operations in '{LIST_PROJECT}' (every other one moved to running) \
         and {} running in '{RUN_PROJECT}', {} writes in {:.1} s ({:.0} writes/s); each \
         scenario {copies} and starts a fresh opsd; \
         create_durable, transition and wait_wakeup's releases go through the HTTP API",
        plan.list_ops,
        plan.running_ops,
        template.writes,
        template.secs,
        template.writes as f64 / template.secs.max(1e-9),
    )
}

/// `--replicas` needs PostgreSQL (replicas share its database) and a sane count.
fn check_replicas(cli: &Cli) -> Result<(), String> {
    match cli.replicas {
        Some(_) if cli.backend != BackendName::Postgres => Err(
            "--replicas needs --backend postgres: replicas share one PostgreSQL database".into(),
        ),
        Some(n) if !(1..=replicas::MAX_REPLICAS).contains(&n) => Err(format!(
            "--replicas must be between 1 and {}, not {n}",
            replicas::MAX_REPLICAS
        )),
        _ => Ok(()),
    }
}

/// The round trips to measure PostgreSQL at (`--pg-rtt`, or the mode's default) and,
/// if any is above zero, the server the proxy forwards to.
fn rtts(cli: &Cli) -> Result<(Vec<Duration>, Option<SocketAddr>), String> {
    if cli.backend != BackendName::Postgres {
        if !cli.pg_rtt.is_empty() {
            return Err("--pg-rtt needs --backend postgres".into());
        }
        return Ok((vec![Duration::ZERO], None));
    }
    let mut rtts = if cli.pg_rtt.is_empty() {
        link::default_rtts(cli.mode)
    } else {
        cli.pg_rtt.clone()
    };
    // Each once, in the order given.
    let mut seen = Vec::new();
    rtts.retain(|r| {
        let new = !seen.contains(r);
        seen.push(*r);
        new
    });
    let upstream = match &cli.database_url {
        Some(url) if rtts.iter().any(|r| !r.is_zero()) => {
            let url: opsd_store_open::DatabaseUrl = url.parse()?;
            let upstream = link::upstream_of(&url)?;
            // Fails now, not in the first scenario, if the URL cannot be pointed at a proxy.
            link::through(&url, SocketAddr::from(([127, 0, 0, 1], 1)))?;
            Some(upstream)
        }
        _ => None,
    };
    Ok((rtts, upstream))
}
