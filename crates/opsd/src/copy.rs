//! `opsd copy`: one pass of a copy between stores (SQLite data directory or PostgreSQL
//! URL, either way), resumable, then a verification. The runbook is
//! docs/backup-and-move.md; the mechanism is `opsd_store::copy`.

use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opsd_store_open::StoreConfig;
use serde_json::json;

use crate::BoxError;
use crate::cli::Output;

/// Flags of `opsd copy`.
#[derive(Args)]
pub struct CopyArgs {
    /// The store to copy from: a data directory (SQLite) or a postgres:// URL. It may be
    /// serving; for the final pass, make it read-only first.
    #[arg(long, env = "OPSD_COPY_FROM", hide_env_values = true,
          value_parser = opsd_store_open::copy::parse_store)]
    from: StoreConfig,
    /// The store to copy into: empty (at most the first admin key of an unused
    /// `opsd serve`), or an earlier copy of the same source, which this pass brings up
    /// to date. Not serving.
    #[arg(long, env = "OPSD_COPY_TO", hide_env_values = true,
          value_parser = opsd_store_open::copy::parse_store)]
    to: StoreConfig,
    /// Source events per batch; each batch is one transaction on the target, and a copy
    /// that is interrupted resumes after the last one committed.
    #[arg(long, default_value_t = opsd_store::copy::BATCH as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
    /// Skip the verification after the pass (it reads both stores in full).
    #[arg(long)]
    no_verify: bool,
    /// Output: a progress bar and a summary, or JSON lines (progress, then the result).
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
}

/// `opsd copy`. Exits non-zero when the verification finds a difference.
pub async fn run(args: CopyArgs) -> Result<(), BoxError> {
    let started = Instant::now();
    let bar = (args.output == Output::Table).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} events [{bar:30}] {per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let progress = |done: u64, total: u64| match &bar {
        Some(bar) => {
            bar.set_length(total.max(done));
            bar.set_position(done);
        }
        None => println!(
            "{}",
            json!({"event": "progress", "events_copied": done, "events_total": total})
        ),
    };
    let (from, to) = (args.from.describe(), args.to.describe());
    let report =
        opsd_store_open::copy::pass(&args.from, &args.to, args.batch_size as usize, &progress)
            .await
            .map_err(|e| format!("copy from {from} to {to}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match args.output {
        Output::Json => println!(
            "{}",
            json!({"event": "pass", "from": from, "to": to, "seconds": seconds, "report": report})
        ),
        Output::Table => {
            println!(
                "{} {from} to {to}: {} events in {seconds:.1} s; the target's epoch is {}",
                if report.resumed {
                    "resumed the copy from"
                } else {
                    "copied"
                },
                report.events,
                report.target_epoch
            );
            if let Some(key) = &report.replaced_first_key {
                println!(
                    "  replaced the target's first admin key ({key}), which an unused `opsd serve` \
                     created, with the source's keys"
                );
            }
        }
    }
    if args.no_verify {
        return Ok(());
    }
    let verification = opsd_store_open::copy::verify(&args.from, &args.to)
        .await
        .map_err(|e| format!("verification: {e}"))?;
    match args.output {
        Output::Json => println!(
            "{}",
            json!({"event": "verification", "passed": verification.passed(),
                   "source": verification.source, "target": verification.target})
        ),
        Output::Table => println!(
            "verification {}: source {} operations, {} events, {} keys, sha256 {}; target {} \
             operations, {} events, {} keys, sha256 {}",
            if verification.passed() {
                "passed"
            } else {
                "FAILED"
            },
            verification.source.counts.operations,
            verification.source.counts.events,
            verification.source.counts.keys,
            verification.source.sha256,
            verification.target.counts.operations,
            verification.target.counts.events,
            verification.target.counts.keys,
            verification.target.sha256,
        ),
    }
    if verification.passed() {
        Ok(())
    } else {
        Err(
            "the stores differ: if the source took writes during this pass, make it read-only \
             (opsd serve --read-only, or PUT /v1/admin/read_only) and run the copy again"
                .into(),
        )
    }
}
