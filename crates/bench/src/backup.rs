//! `backup` (SQLite): what a backup costs the writers and how fast backups and copies
//! go. On a fresh copy of the template, creates run open-loop at a modest rate twice:
//! without a backup, then while `opsd backup --data-dir` runs one backup after another
//! from another process; the p99s of the two phases are the write stall. It also
//! records the backups' rate (operations per second), the WAL's growth during them, and
//! then the rate of `opsd copy` of the same store into a new SQLite directory.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::ctx::Ctx;
use crate::outcome::{Outcome, r3};
use crate::workload;

/// Producers, and the rate they are offered (creates/s): well under capacity, so that
/// what the backup adds stands out.
const CONNS: usize = 16;
const RATE: f64 = 200.0;

/// Runs `opsd` with `args`; its last stdout line as JSON.
fn opsd_json(opsd: &Path, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(opsd)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "opsd {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("{e}: {last}"))
}

/// `backup`.
pub fn backup(ctx: &mut Ctx) -> Result<Outcome, String> {
    let (copy, server) = ctx.fresh_opsd("backup")?;
    let dir = copy.dir.path().to_owned();
    let make = workload::creates("bench-backup".into(), "backup");
    let without = ctx.open(server.addr, CONNS, RATE, ctx.plan.write, make.clone());

    let wal = dir.join("opsd.db-wal");
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let wal_before = wal_size();
    let stop = AtomicBool::new(false);
    let opsd = ctx.opsd.clone();
    let snapshots = ctx.work.path().join("backups");
    std::fs::create_dir_all(&snapshots).map_err(|e| e.to_string())?;
    let (during, taken) = std::thread::scope(|s| {
        let backups = s.spawn(|| {
            let (mut taken, mut wal_max) = (Vec::new(), wal_before);
            while !stop.load(Ordering::Relaxed) {
                let to = snapshots.join(format!("{}.db", taken.len()));
                let (dir_arg, to_arg) = (dir.display().to_string(), to.display().to_string());
                let started = Instant::now();
                let done = opsd_json(
                    &opsd,
                    &[
                        "backup",
                        "--data-dir",
                        &dir_arg,
                        "--to",
                        &to_arg,
                        "-o",
                        "json",
                    ],
                );
                let secs = started.elapsed().as_secs_f64();
                wal_max = wal_max.max(wal_size());
                let _ = std::fs::remove_file(&to);
                match done {
                    Ok(v) => taken.push((v["summary"]["operations"].as_u64().unwrap_or(0), secs)),
                    Err(e) => return Err(e),
                }
            }
            Ok((taken, wal_max))
        });
        let during = ctx.open(server.addr, CONNS, RATE, ctx.plan.write, make);
        stop.store(true, Ordering::Relaxed);
        let taken = backups
            .join()
            .map_err(|_| "the backup thread panicked".to_owned());
        (during, taken)
    });
    let (taken, wal_max) = taken??;
    drop(server);
    if taken.is_empty() {
        return Err("no backup finished during the measurement".into());
    }
    let (ops, secs) = taken
        .iter()
        .fold((0u64, 0f64), |(o, s), (ops, secs)| (o + ops, s + secs));

    // The copy rate: the whole store into a new SQLite directory, without verifying.
    let target = ctx.work.path().join("copy-target");
    let _ = std::fs::remove_dir_all(&target);
    let started = Instant::now();
    let copied = opsd_json(
        &ctx.opsd,
        &[
            "copy",
            "--from",
            &dir.display().to_string(),
            "--to",
            &target.display().to_string(),
            "--no-verify",
            "-o",
            "json",
        ],
    )?;
    let copy_secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&target);
    let copy_ops = ops / taken.len() as u64;

    let mut o = Outcome::from_phases(&during, None, CONNS);
    o.open_loop_rate = Some(RATE);
    o.ops_per_s = r3(ops as f64 / secs.max(1e-9));
    o.add_errors(&without);
    o.target = "none: reported (backup and copy rates, the write stall during backups)".into();
    o.extra("backup_ops_per_s", r3(ops as f64 / secs.max(1e-9)));
    o.extra("backups_taken", taken.len() as u64);
    o.extra("operations_per_backup", copy_ops);
    o.extra(
        "create_p99_ms_without_backup",
        r3(without.quantile_ms(0.99)),
    );
    o.extra("create_p99_ms_during_backups", r3(during.quantile_ms(0.99)));
    o.extra("create_max_ms_during_backups", r3(during.quantile_ms(1.0)));
    o.extra("wal_growth_bytes", wal_max.saturating_sub(wal_before));
    o.extra("copy_seconds", r3(copy_secs));
    o.extra("copy_ops_per_s", r3(copy_ops as f64 / copy_secs.max(1e-9)));
    o.extra(
        "copy_events",
        copied["report"]["events"].as_u64().unwrap_or(0),
    );
    Ok(o)
}
