//! `opsd backup` and `opsd restore`: a consistent snapshot of a SQLite store taken while
//! opsd serves (from the file, or by asking the server), and its restoration into a
//! data directory. The snapshot logic is the SQLite backend's (`snapshot`); this module
//! adds the command line: a progress bar for people, JSON lines with `-o json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use opsd_store::backup::Summary;
use opsd_store_sqlite::snapshot::{self, Progress};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::BoxError;
use crate::cli::{Connection, Output};

/// Flags of `opsd backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// The new file to write the backup to.
    #[arg(long)]
    to: PathBuf,
    /// Back up the SQLite store in this data directory directly (opsd may be serving
    /// it). Without it, the server at --url/OPSD_URL is asked (admin key needed).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    conn: Connection,
    /// Output: `table` draws a progress bar and prints a summary; `json` prints one JSON
    /// line per progress step and a last one with the summary.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
}

/// Flags of `opsd restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file to restore.
    #[arg(long)]
    from: PathBuf,
    /// The data directory to restore into (opsd must not be serving it).
    #[arg(long, env = "OPSD_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Replace a store that holds operations or events.
    #[arg(long)]
    force: bool,
    /// Output: a readable summary, or one JSON document.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
}

/// Reports progress in the chosen output.
struct Reporter {
    output: Output,
    bar: Option<ProgressBar>,
}

impl Reporter {
    fn new(output: Output) -> Self {
        let bar = (output == Output::Table).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Reporter { output, bar }
    }

    fn progress(&self, copied: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total.max(copied));
                bar.set_position(copied);
            }
            None => println!(
                "{}",
                json!({"event": "progress", "bytes_copied": copied, "bytes_total": total})
            ),
        }
    }

    fn done(&self, to: &Path, summary: &Summary, seconds: f64) -> Result<(), BoxError> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let mut out = std::io::stdout().lock();
        match self.output {
            Output::Json => writeln!(
                out,
                "{}",
                json!({"event": "done", "file": to, "seconds": seconds, "summary": summary})
            )?,
            Output::Table => writeln!(
                out,
                "backup written to {} and verified (integrity_check ok)\n  operations  {}\n  \
                 events      {}\n  api keys    {}\n  size        {} bytes\n  seconds     \
                 {seconds:.1}\n  sha256      {}",
                to.display(),
                summary.operations,
                summary.events,
                summary.keys,
                summary.bytes,
                summary.sha256
            )?,
        }
        Ok(())
    }
}

/// `opsd backup`.
pub async fn backup(args: BackupArgs) -> Result<(), BoxError> {
    let started = Instant::now();
    let reporter = Reporter::new(args.output);
    let summary = match &args.data_dir {
        Some(dir) => {
            let db = dir.join(opsd_store_open::SQLITE_FILE);
            let to = args.to.clone();
            let reporter_ref = &reporter;
            // The copy is blocking file work; scoped so it can borrow the reporter.
            tokio::task::block_in_place(|| {
                snapshot::backup(&db, &to, &|p: Progress| {
                    reporter_ref.progress(p.copied, p.total);
                })
            })?
        }
        None => download(&args, &reporter).await?,
    };
    reporter.done(&args.to, &summary, started.elapsed().as_secs_f64())
}

/// Receives a backup from the server into `args.to`, checking its SHA-256 against the
/// server's and its integrity before it gets its final name.
async fn download(args: &BackupArgs, reporter: &Reporter) -> Result<Summary, BoxError> {
    if args.to.exists() {
        return Err(format!(
            "{} already exists; choose another name or remove it first",
            args.to.display()
        )
        .into());
    }
    let client = args.conn.client()?;
    let mut download = client.backup().await?;
    let mut partial = args.to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = async {
        let mut file = std::fs::File::create(&partial)
            .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        let mut hasher = Sha256::new();
        let (mut copied, total) = (0u64, download.length.unwrap_or(0));
        let mut last_report = Instant::now();
        while let Some(chunk) = download.chunk().await? {
            hasher.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
            copied += chunk.len() as u64;
            if last_report.elapsed() > Duration::from_millis(200) {
                reporter.progress(copied, total);
                last_report = Instant::now();
            }
        }
        file.sync_all()
            .map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
        let got: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if download.sha256.as_deref() != Some(got.as_str()) {
            return Err(format!(
                "the backup received has SHA-256 {got}, but the server sent {}: the transfer \
                 was damaged; retry",
                download.sha256.as_deref().unwrap_or("none")
            )
            .into());
        }
        let summary = snapshot::inspect(&partial)?;
        std::fs::rename(&partial, &args.to)
            .map_err(|e| format!("cannot rename to {}: {e}", args.to.display()))?;
        Ok::<_, BoxError>(summary)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// `opsd restore`.
pub async fn restore(args: RestoreArgs) -> Result<(), BoxError> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let db = args.data_dir.join(opsd_store_open::SQLITE_FILE);
    let restored = tokio::task::block_in_place(|| snapshot::restore(&args.from, &db, args.force))?;
    let s = &restored.snapshot;
    match args.output {
        Output::Json => println!(
            "{}",
            json!({
                "restored": db,
                "summary": s,
                "migrations_applied": restored.migrated,
                "epoch": restored.epoch,
                "replaced": restored.replaced.map(|(o, e)| json!({"operations": o, "events": e})),
            })
        ),
        Output::Table => {
            println!(
                "restored {} into {}: {} operations, {} events, {} api keys; new epoch {}",
                args.from.display(),
                db.display(),
                s.operations,
                s.events,
                s.keys,
                restored.epoch
            );
            if !restored.migrated.is_empty() {
                println!("  migrations applied: {:?}", restored.migrated);
            }
            if let Some((ops, events)) = restored.replaced {
                println!("  replaced what was there: {ops} operations, {events} events");
            }
            println!(
                "  the API keys are the backup's: a key file in {} belongs to the store it replaced",
                args.data_dir.display()
            );
        }
    }
    Ok(())
}
