//! `--replicas N` (PostgreSQL only): the same database served by 1 and by N `opsd
//! serve` processes. Each row starts its replicas on a fresh copy of the seeded template
//! and the load generator spreads its connections over them (connection `i` talks to
//! replica `i mod N`, as a round-robin load balancer would place them):
//! `get_by_id`, `list_first_page` and `create_durable` (`throughput`: the 1- and
//! N-replica clusters side by side, their closed loops alternating in rounds; creates
//! also against the storage ceiling at the same round trip, in rounds between theirs), and
//! `wait_wakeup` with the writes going through one replica and every waiter parked on
//! the others (`wait`). The table and its files come from `table`.
//!
//! Every replica is started on the server core like the single opsd of the other
//! scenarios, so 1 and N replicas get the same CPU: on a 2-core machine the rows compare
//! one process with N processes sharing that core (the cost of splitting the work and of
//! the change feed between processes), not scale-out onto more hardware.
//!
//! Every scenario runs at each round trip to PostgreSQL of the run (`--pg-rtt`) in turn,
//! all its rows at that round trip (every replica, and the storage ceiling) behind one
//! delaying proxy above zero.

mod table;
mod throughput;
mod wait;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use tempfile::TempDir;

use crate::backend::Backend;
use crate::cli::Cli;
use crate::ctx::Ctx;
use crate::machine::Machine;
use crate::server::Server;
use crate::setup::{binaries_note, pinning_note};
use crate::template::Copy;

pub use table::{ReplicaReport, Row};

/// The scenarios of a replica run, in the order they run.
pub const SCENARIOS: [&str; 4] = [
    "get_by_id",
    "list_first_page",
    "create_durable",
    "wait_wakeup",
];

/// The name of the result files.
const RESULTS: &str = "results-postgres-replicas";

/// Most replicas a run starts (each is a process with its own database pool).
pub const MAX_REPLICAS: usize = 8;

/// `max` replicas and the single-replica baseline, each once: `[1, max]`.
pub fn counts(max: usize) -> Vec<usize> {
    if max <= 1 { vec![1] } else { vec![1, max] }
}

/// `--replicas max`: the rows of the scenarios `--only` names (all when empty), then
/// their table (`write`); `seeding` says how the template was seeded.
pub fn run(
    cli: &Cli,
    mut ctx: Ctx,
    max: usize,
    machine: Machine,
    seeding: String,
    started: Instant,
) -> Result<(), String> {
    let rows = rows(&mut ctx, max, &cli.only);
    let report = ReplicaReport {
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
        seeding,
        binaries: binaries_note(&cli.profile),
        max_replicas: max,
        rtts: ctx.rtts.clone(),
        rows,
        seconds: started.elapsed().as_secs_f64(),
    };
    drop(ctx);
    write(&cli.out, &report)
}

/// Runs every scenario named in `only` (all when empty) with 1 and `max` replicas, at
/// every round trip of the run: both counts of a scenario behind one proxy.
fn rows(ctx: &mut Ctx, max: usize, only: &[String]) -> Vec<Row> {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|n| n == name);
    let counts = counts(max);
    let mut rows = Vec::new();
    let started = std::time::Instant::now();
    for name in SCENARIOS.into_iter().filter(|n| wanted(n)) {
        for (i, rtt) in ctx.rtts.clone().into_iter().enumerate() {
            eprintln!(
                "opsd-bench: {name} with {counts:?} replicas at RTT {} ({:.0} s in)",
                opsd_proxy::format_rtt(rtt),
                started.elapsed().as_secs_f64()
            );
            let measured = ctx.at_rtt(i, |ctx| match name {
                "wait_wakeup" => Ok(counts
                    .iter()
                    .map(|&n| wait::wait_wakeup(ctx, n).unwrap_or_else(|e| Row::failed(name, n, e)))
                    .collect()),
                _ => throughput::measure(ctx, name, &counts),
            });
            let measured = match measured {
                Ok((Ok(measured), notes)) => measured
                    .into_iter()
                    .map(|mut row| {
                        for (key, value) in &notes {
                            row.extra(key, value.clone());
                        }
                        row
                    })
                    .collect(),
                Ok((Err(e), _)) | Err(e) => counts
                    .iter()
                    .map(|&n| Row::failed(name, n, e.clone()))
                    .collect::<Vec<_>>(),
            };
            for mut row in measured {
                row.rtt = rtt;
                eprintln!("  {}", row.to_json());
                rows.push(row);
            }
        }
    }
    rows
}

/// Prints the table and writes `results-postgres-replicas.json` and `.md` to `out`
/// (beside, never over, the single-server results); fails if any row failed.
fn write(out: &Path, report: &ReplicaReport) -> Result<(), String> {
    let json = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
    std::fs::write(out.join(format!("{RESULTS}.json")), json + "\n").map_err(|e| e.to_string())?;
    let table = report.markdown();
    std::fs::write(out.join(format!("{RESULTS}.md")), &table).map_err(|e| e.to_string())?;
    println!("{table}");
    println!("Results in {}: {RESULTS}.json, {RESULTS}.md", out.display());
    let failed: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.failed.is_some())
        .map(|r| format!("{} ({} replicas)", r.scenario, r.replicas))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("scenarios failed to run: {}", failed.join(", ")))
    }
}

/// N replicas of opsd on one fresh copy of the template database; killed when dropped.
pub struct Cluster {
    // Declared first so that the processes are killed before their database is dropped.
    servers: Vec<Server>,
    /// The admin key the first replica created, which every replica accepts.
    key: String,
    _dirs: Vec<TempDir>,
    _copy: Copy,
}

impl Cluster {
    /// Starts `n` replicas one after another: the first creates the admin key (which
    /// the load generator then uses on every replica), the others find one exists.
    pub fn start(ctx: &Ctx, name: &str, n: usize) -> Result<Cluster, String> {
        let copy = ctx.copy_template(name)?;
        let url = copy
            .db
            .as_ref()
            .map(|db| ctx.db_url(db))
            .ok_or("replicas need --backend postgres")??;
        let mut servers = vec![Server::opsd(
            &ctx.opsd,
            copy.dir.path(),
            Some(&url),
            &ctx.pinning,
        )?];
        let mut dirs = Vec::new();
        for i in 1..n {
            let dir = tempfile::Builder::new()
                .prefix(&format!("{name}-replica{i}-"))
                .tempdir_in(ctx.work.path())
                .map_err(|e| e.to_string())?;
            servers.push(Server::opsd_replica(
                &ctx.opsd,
                dir.path(),
                Some(&url),
                &ctx.pinning,
            )?);
            dirs.push(dir);
        }
        if let Some(cpus) = servers[0].cpus_allowed() {
            let _ = ctx.opsd_cpus.set(cpus);
        }
        let key = std::fs::read_to_string(copy.dir.path().join("admin.key"))
            .map_err(|e| format!("cannot read the first replica's admin.key: {e}"))?;
        Ok(Cluster {
            servers,
            key: key.trim().to_owned(),
            _dirs: dirs,
            _copy: copy,
        })
    }

    /// Makes the load generator's requests carry this cluster's key (each cluster's
    /// database has a key of its own; starting a cluster switches to its key).
    pub fn use_key(&self) -> Result<(), String> {
        crate::loadgen::set_api_key(&self.key)
    }

    /// Where each replica listens.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    /// Kills every replica; returns the largest peak RSS among them, MiB.
    pub fn stop(self) -> Option<f64> {
        let Cluster { servers, .. } = self;
        servers
            .into_iter()
            .filter_map(Server::stop)
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_comes_first_and_only_once() {
        assert_eq!(counts(1), vec![1]);
        assert_eq!(counts(2), vec![1, 2]);
        assert_eq!(counts(3), vec![1, 3]);
    }
}
