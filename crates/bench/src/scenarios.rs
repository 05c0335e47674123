//! The single-server scenarios (without `--replicas`): each of `report::SCENARIOS` in
//! turn, at every round trip of the run, then the report — results.json, results.md and
//! the charts; fails if any scenario failed to run.

use std::time::Instant;

use tokio::runtime::Runtime;

use crate::backend::Backend;
use crate::cli::{BackendName, Cli};
use crate::ctx::{Ctx, LinkNotes};
use crate::machine::Machine;
use crate::outcome::{self, Entry};
use crate::report::{Group, Report, SCENARIOS};
use crate::setup::{binaries_note, pinning_note};
use crate::{backup, charts, grpc, reads, scale, wait, writes};

/// Runs the scenarios `--only` names (all when empty) on `ctx`; `seeding` says how the
/// template was seeded.
pub fn run(
    cli: &Cli,
    mut ctx: Ctx,
    seed_rt: &Runtime,
    machine: Machine,
    seeding: String,
    started: Instant,
) -> Result<(), String> {
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
            match scale::scale(&mut ctx, seed_rt) {
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
                    "google_get" => reads::google_get(ctx).map(done),
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
        seeding: format!("{seeding}{scale_note}"),
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

/// Prints the table and writes results.json, results.md and the charts to `--out`
/// (with `-postgres` in their names on that backend).
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
