//! `opsd-bench`: opsd's benchmark harness (run it through `scripts/bench`).
//!
//! Every scenario starts a fresh `opsd serve` on a copy of a seeded data directory,
//! drives it with the load generator in `loadgen`, and divides what it got by a ceiling
//! measured in the same run with the same load (`ceiling`): numbers on a shared 2-core
//! machine are noisy, ratios much less so. With `--backend postgres` the same scenarios
//! run against `opsd serve --database-url …`, each on its own copy of a seeded database
//! (`pg`), and the storage ceiling is PostgreSQL's (`ceiling_pg`). Read in this order:
//! `plan` (sizes per mode), `loadgen`, `ceiling`, `seed` and `ctx`, then the scenarios
//! (`reads`, `writes`, `wait`, `scale`), then `report` and `charts`. `--replicas N`
//! runs the scenarios of `replicas` instead: 1 and N opsd processes on one database.
//! On PostgreSQL every scenario runs at each round trip of `--pg-rtt` in turn, behind a
//! delaying proxy above zero (`link`); `opsd-bench proxy` runs that proxy on its own.

mod backend;
mod backup;
mod ceiling_servers;
mod charts;
mod ctx;
mod grpc;
mod link;
mod loadgen;
mod machine;
mod otlp_sink;
mod outcome;
mod pg;
mod plan;
mod reads;
mod replicas;
mod report;
mod scale;
mod seed;
mod server;
mod soak;
mod storage_ceiling;
mod storage_ceiling_pg;
mod template;
mod wait;
mod workload;
mod writes;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::backend::Backend;
use crate::ctx::{AtRtt, Ctx, LinkNotes};
use crate::link::Link;
use crate::machine::{Machine, Pinning};
use crate::outcome::Entry;
use crate::plan::{Mode, Plan};
use crate::report::{Group, Report, SCENARIOS};
use crate::template::{LIST_PROJECT, RUN_PROJECT, Template};

/// opsd's benchmark harness.
#[derive(Parser)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Sizes and durations.
    #[arg(long, value_enum, default_value_t = Mode::Full)]
    mode: Mode,
    /// The opsd binary to measure.
    #[arg(long, default_value = "target/release/opsd")]
    opsd: PathBuf,
    /// Where results.json, results.md and the charts go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Run only these scenarios (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Do not pin servers and load generator to separate CPUs.
    #[arg(long)]
    no_pin: bool,
    /// How the binaries were built, for the report (`release` or `debug`).
    #[arg(long, default_value = "release")]
    profile: String,
    /// The storage backend opsd runs on.
    #[arg(long, value_enum, default_value_t = BackendName::Sqlite)]
    backend: BackendName,
    /// The PostgreSQL server for `--backend postgres` (its user needs CREATEDB: every
    /// scenario gets a database of its own).
    #[arg(long, env = "OPSD_BENCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// With `--backend postgres`: measure 1 and this many `opsd serve` replicas on one
    /// database (get/list/create throughput, wait_wakeup across replicas) instead of
    /// the single-server scenarios.
    #[arg(long)]
    replicas: Option<usize>,
    /// With `--backend postgres`: the round trips between opsd (and the storage ceiling)
    /// and PostgreSQL to measure every scenario at, comma-separated (`0,0.5ms,2ms`; a
    /// bare number is milliseconds). Above 0, a delaying proxy in this process sits in
    /// between; 0 connects as the URL says. Default: 0 and 0.5 ms, and 2 ms in the full
    /// run.
    #[arg(long, value_delimiter = ',', value_parser = opsd_proxy::parse_rtt)]
    pg_rtt: Vec<Duration>,
}

/// `--backend`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendName {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
enum Command {
    /// The HTTP ceiling server: answers every request with the given body.
    CeilingHttp {
        #[arg(long)]
        body_file: PathBuf,
    },
    /// The gRPC ceiling server: answers every GetOperation with the given message.
    CeilingGrpc {
        #[arg(long)]
        body_file: PathBuf,
    },
    /// A long mixed load at half capacity; fails if memory, files or tasks keep growing.
    Soak {
        /// The opsd binary to soak.
        #[arg(long, default_value = "target/release/opsd")]
        opsd: PathBuf,
        /// How long, e.g. 60s or 30m.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
    },
    /// A collector that accepts OTLP/HTTP trace exports and discards them, until
    /// killed (for measuring what export costs: point OTEL_EXPORTER_OTLP_ENDPOINT here).
    OtlpSink {
        /// Where opsd sends its spans, e.g. 127.0.0.1:4318.
        #[arg(long)]
        listen: SocketAddr,
        /// How often to print what arrived.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        every: Duration,
    },
    /// A delaying TCP proxy (`opsd_proxy`) until killed: every byte to and from the
    /// upstream server half the round trip late each way; prints the round trip it
    /// measures to stderr now and then.
    Proxy {
        /// Where clients connect, e.g. 127.0.0.1:6432.
        #[arg(long)]
        listen: SocketAddr,
        /// The server to forward to, host:port.
        #[arg(long)]
        upstream: String,
        /// The round trip to add, e.g. 0.5ms, 500us, 2ms.
        #[arg(long, value_parser = opsd_proxy::parse_rtt)]
        rtt: Duration,
        /// Where to serve the control API: POST /blackhole, /flow, /cut; GET /stats.
        #[arg(long)]
        control: Option<SocketAddr>,
        /// How often to print the measured round trip.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        every: Duration,
    },
}

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
        }) => run_proxy(*listen, upstream, *rtt, *control, *every),
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
    // 10,000 waiters (50,000 in the full run's wait_many) are as many sockets here and in
    // opsd, which inherits this limit when it is spawned below; wait_many runs fewer, and
    // says so, where the hard limit is lower.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).map_err(|e| e.to_string())?;
    let machine = Machine::detect();
    let pinning = Pinning::plan(!cli.no_pin);
    let opsd = std::fs::canonicalize(&cli.opsd)
        .map_err(|e| format!("opsd binary {}: {e}", cli.opsd.display()))?;
    eprintln!(
        "opsd-bench: mode {:?}, {} × {}, {}; open files ≤ {nofile}",
        cli.mode, machine.cores, machine.cpu_model, pinning.note
    );
    if cli.mode == Mode::Smoke {
        eprintln!("opsd-bench: smoke mode proves the harness works; its numbers mean nothing");
    }
    let backend = match (cli.backend, &cli.database_url) {
        (BackendName::Sqlite, _) => Backend::Sqlite,
        (BackendName::Postgres, Some(url)) => Backend::Postgres(pg::Pg::connect(url)?),
        (BackendName::Postgres, None) => {
            return Err(
                "--backend postgres needs --database-url (scripts/bench starts a \
                        throwaway server and passes it)"
                    .into(),
            );
        }
    };
    if let Backend::Postgres(pg) = &backend {
        eprintln!(
            "opsd-bench: backend {}; round trips {}",
            pg.describe,
            rtts.iter()
                .map(|r| opsd_proxy::format_rtt(*r))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    std::fs::create_dir_all(&cli.out).map_err(|e| e.to_string())?;
    let seed_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let work = tempfile::Builder::new()
        .prefix("opsd-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    eprintln!("opsd-bench: seeding the template");
    let template = Template::build(&plan, &work.path().join("template"), &backend, &seed_rt)?;
    let (through, in_flight, copies) = match backend {
        Backend::Sqlite => (
            "opsd_store_sqlite::SqliteStore",
            "1,024",
            "copies it to a fresh data directory",
        ),
        Backend::Postgres(_) => (
            "opsd_backends::open (the PostgreSQL store)",
            "1,024",
            "gets a copy of it (CREATE DATABASE … TEMPLATE)",
        ),
    };
    let template_note = format!(
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
    );
    let mut ctx = Ctx {
        rt: pinning.client_runtime().map_err(|e| e.to_string())?,
        plan,
        pinning,
        opsd,
        backend,
        work,
        template,
        saved: rtts.iter().map(|_| AtRtt::default()).collect(),
        rtts,
        upstream,
        link: Link::direct(),
        at: AtRtt::default(),
        opsd_cpus: std::sync::OnceLock::new(),
    };
    if let Some(max) = cli.replicas {
        let rows = replicas::run(&mut ctx, max, &cli.only);
        let report = replicas::ReplicaReport {
            mode: cli.mode,
            database: match &ctx.backend {
                Backend::Postgres(pg) => pg.describe.clone(),
                Backend::Sqlite => String::new(),
            },
            machine,
            pinning: format!(
                "{}; every replica is started like that opsd (pinned: on the same CPU, so N \
                 replicas share what 1 had)",
                pinning_note(&ctx, cli.backend)
            ),
            seeding: template_note,
            binaries: binaries_note(&cli.profile),
            max_replicas: max,
            rtts: ctx.rtts.clone(),
            rows,
            seconds: started.elapsed().as_secs_f64(),
        };
        drop(ctx);
        return replicas::write(&cli.out, &report);
    }
    let postgres = cli.backend == BackendName::Postgres;
    let mut groups: Vec<Group> = ctx
        .rtts
        .iter()
        .map(|rtt| Group {
            rtt: postgres.then_some(*rtt),
            entries: Vec::new(),
        })
        .collect();
    let (mut db_per_million, mut scale_note, mut scale_points) = (None, String::new(), Vec::new());
    // Scenario by scenario, each at every round trip in turn: the runs of one scenario
    // are close in time, so a change in the shared machine's load hits them alike.
    for name in SCENARIOS {
        if !cli.only.is_empty() && !cli.only.iter().any(|n| n == name) {
            continue;
        }
        if name == "scale" {
            eprintln!(
                "opsd-bench: {name} ({:.0} s in)",
                started.elapsed().as_secs_f64()
            );
            // Grown once; every size measured at every round trip.
            match scale::scale(&mut ctx, &seed_rt) {
                Ok(s) => {
                    db_per_million = Some(s.db_bytes_per_million_ops);
                    scale_note = format!(
                        "; scale: its own database grown step by step the same way ({} \
                         writes in {:.1} s, {:.0} writes/s), operations spread over 100 \
                         projects",
                        s.seeding.0,
                        s.seeding.1,
                        s.seeding.0 as f64 / s.seeding.1.max(1e-9)
                    );
                    scale_points = s.points;
                    for (group, (o, notes)) in groups.iter_mut().zip(s.outcomes) {
                        let entry = annotate(done(o), notes);
                        eprintln!("  {}", entry.to_json());
                        group.entries.push((name.to_owned(), entry));
                    }
                }
                Err(e) => {
                    eprintln!("  {e}");
                    for group in &mut groups {
                        group
                            .entries
                            .push((name.to_owned(), Entry::Failed(e.clone())));
                    }
                }
            }
            continue;
        }
        for (i, group) in groups.iter_mut().enumerate() {
            let at = group
                .rtt
                .map(|r| format!(" at RTT {}", opsd_proxy::format_rtt(r)))
                .unwrap_or_default();
            eprintln!(
                "opsd-bench: {name}{at} ({:.0} s in)",
                started.elapsed().as_secs_f64()
            );
            let entry = ctx
                .at_rtt(i, |ctx| match name {
                    "get_by_id" => reads::get_by_id(ctx).map(done),
                    "grpc_get" => grpc::grpc_get(ctx).map(done),
                    "list_first_page" => reads::list_first_page(ctx).map(done),
                    "list_deep_page" => reads::list_deep_page(ctx).map(done),
                    "create_durable" => writes::create_durable(ctx).map(done),
                    "transition" => writes::transition(ctx).map(done),
                    "wait_wakeup" => wait::wait_wakeup(ctx),
                    "backup" => match ctx.backend {
                        Backend::Sqlite => backup::backup(ctx).map(done),
                        Backend::Postgres(_) => Ok(Entry::Skipped(
                            "PostgreSQL is backed up with its own tools (pg_dump)".into(),
                        )),
                    },
                    _ => wait::wait_many(ctx),
                })
                .and_then(|(entry, notes)| entry.map(|e| annotate(e, notes)))
                .unwrap_or_else(Entry::Failed);
            eprintln!("  {}", entry.to_json());
            group.entries.push((name.to_owned(), entry));
        }
    }
    let database = match &ctx.backend {
        Backend::Sqlite => None,
        Backend::Postgres(pg) => Some(pg.describe.clone()),
    };
    let pinning = pinning_note(&ctx, cli.backend);
    // Drops every scenario's copy, then the template (on PostgreSQL: their databases).
    drop(ctx);
    let report = Report {
        mode: cli.mode,
        database,
        machine,
        pinning,
        seeding: format!("{template_note}{scale_note}"),
        binaries: binaries_note(&cli.profile),
        db_bytes_per_million_ops: db_per_million,
        groups,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_outputs(cli, &report, &scale_points)?;
    let failed: Vec<String> = report
        .groups
        .iter()
        .flat_map(|g| g.entries.iter().map(move |e| (g, e)))
        .filter(|(_, (_, e))| matches!(e, Entry::Failed(_)))
        .map(|(g, (n, _))| format!("{n}{}", g.label(" at RTT ")))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("scenarios failed to run: {}", failed.join(", ")))
    }
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

/// Where servers and load generator ran, as the report says it.
fn pinning_note(ctx: &Ctx, backend: BackendName) -> String {
    let pinning = match ctx.opsd_cpus.get() {
        Some(cpus) => format!("{} (opsd's Cpus_allowed_list: {cpus})", ctx.pinning.note),
        None => ctx.pinning.note.clone(),
    };
    match backend {
        BackendName::Sqlite => pinning,
        BackendName::Postgres if ctx.rtts.iter().any(|r| !r.is_zero()) => format!(
            "{pinning}; PostgreSQL's processes and the delaying proxy's threads unpinned \
             (they share both CPUs with whatever runs)"
        ),
        BackendName::Postgres => format!(
            "{pinning}; PostgreSQL's processes unpinned (they share both CPUs with \
             whatever runs)"
        ),
    }
}

/// How opsd was built, as the report says it.
fn binaries_note(profile: &str) -> String {
    format!(
        "{profile} build of opsd ({})",
        if profile == "release" {
            "numbers comparable between runs on the same machine"
        } else {
            "smoke run: numbers are meaningless, only the harness is tested"
        }
    )
}

fn done(o: outcome::Outcome) -> Entry {
    Entry::Done(Box::new(o))
}

/// A measured entry with what its link measured (round trip asked for and measured).
fn annotate(entry: Entry, notes: LinkNotes) -> Entry {
    match entry {
        Entry::Done(mut o) => {
            for (key, value) in notes {
                o.extra(key, value);
            }
            Entry::Done(o)
        }
        other => other,
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
            let url: opsd_backends::DatabaseUrl = url.parse()?;
            let upstream = link::upstream_of(&url)?;
            // Fails now, not in the first scenario, if the URL cannot be pointed at a proxy.
            link::through(&url, SocketAddr::from(([127, 0, 0, 1], 1)))?;
            Some(upstream)
        }
        _ => None,
    };
    Ok((rtts, upstream))
}

/// `opsd-bench proxy`: a delaying proxy until killed.
fn run_proxy(
    listen: SocketAddr,
    upstream: &str,
    rtt: Duration,
    control: Option<SocketAddr>,
    every: Duration,
) -> Result<(), String> {
    let upstream = upstream
        .to_socket_addrs()
        .map_err(|e| format!("--upstream {upstream}: {e}"))?
        .next()
        .ok_or_else(|| format!("--upstream {upstream} has no address"))?;
    let proxy = opsd_proxy::Proxy::start(opsd_proxy::ProxyConfig {
        listen,
        upstream,
        rtt,
        control,
    })
    .map_err(|e| format!("cannot start the proxy on {listen}: {e}"))?;
    let control = proxy
        .control_addr()
        .map(|a| format!("; control API on http://{a}"))
        .unwrap_or_default();
    eprintln!(
        "opsd-bench proxy: {} → {upstream}, round trip {}{control}",
        proxy.addr(),
        opsd_proxy::format_rtt(rtt)
    );
    let mut chunks = 0;
    loop {
        std::thread::sleep(every.max(Duration::from_millis(100)));
        let s = proxy.stats();
        // Quiet while nothing moves.
        if s.up.chunks + s.down.chunks == chunks {
            continue;
        }
        chunks = s.up.chunks + s.down.chunks;
        eprintln!(
            "opsd-bench proxy: measured round trip p50 {} µs, p99 {} µs (asked {} µs); \
             {} connections ({} open), {} round trips, {} chunks, {} bytes{}",
            s.measured_rtt_p50_us,
            s.measured_rtt_p99_us,
            s.rtt_us,
            s.connections,
            s.open_connections,
            s.turns,
            chunks,
            s.up.bytes + s.down.bytes,
            if s.blackholed { "; blackholed" } else { "" },
        );
    }
}

fn write_outputs(
    cli: &Cli,
    report: &Report,
    scale_points: &[Vec<scale::ScalePoint>],
) -> Result<(), String> {
    let json = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
    let out = &cli.out;
    // Each backend's results have their own names, so one run does not overwrite the
    // other's; SQLite, the default, keeps the plain names.
    let (suffix, title) = match cli.backend {
        BackendName::Sqlite => ("", ""),
        BackendName::Postgres => ("-postgres", " (PostgreSQL)"),
    };
    let names = ["results", "ratios", "latency", "scale"].map(|n| format!("{n}{suffix}"));
    let [results, ratios, latency, scale] = &names;
    std::fs::write(out.join(format!("{results}.json")), json + "\n").map_err(|e| e.to_string())?;
    let table = report.markdown();
    std::fs::write(out.join(format!("{results}.md")), &table).map_err(|e| e.to_string())?;
    // With several round trips, every scenario once per round trip.
    let entries: Vec<(String, Entry)> = report
        .groups
        .iter()
        .flat_map(|g| {
            let at = if report.groups.len() > 1 {
                g.label(" @")
            } else {
                String::new()
            };
            g.entries
                .iter()
                .map(move |(n, e)| (format!("{n}{at}"), e.clone()))
        })
        .collect();
    let series: Vec<(String, Vec<scale::ScalePoint>)> = report
        .groups
        .iter()
        .zip(scale_points)
        .map(|(g, points)| {
            let label = if report.groups.len() > 1 {
                g.label(", RTT ")
            } else {
                String::new()
            };
            (label, points.clone())
        })
        .collect();
    charts::ratios(&out.join(format!("{ratios}.svg")), &entries, title)?;
    charts::latency(&out.join(format!("{latency}.svg")), &entries, title)?;
    charts::scale(&out.join(format!("{scale}.svg")), &series, title)?;
    println!("{table}");
    println!(
        "Results in {}: {results}.json, {results}.md, {ratios}.svg, {latency}.svg, {scale}.svg",
        out.display()
    );
    Ok(())
}
