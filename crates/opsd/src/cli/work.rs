//! `opsd work -- CMD`: a worker for operators who glue scripts to opsd. It claims
//! operations with the SDK's `Worker` (concurrency, heartbeats, cancellation, graceful
//! shutdown) and runs CMD for each one:
//!
//! - one argument runs through `sh -c`, several are run as they are;
//! - the operation is in the environment: `OPSD_OPERATION_ID`, `OPSD_PROJECT_ID`,
//!   `OPSD_KIND`, `OPSD_TYPE`, `OPSD_RESOURCE_ID`, and the whole of it as JSON in
//!   `OPSD_OPERATION`;
//! - `TRACEPARENT` (and `TRACESTATE`) hold the W3C trace context of the request that
//!   created the operation, when it has one, so that what the command does joins that
//!   trace (`opsd ops` commands it runs send it on); otherwise both are removed;
//! - a line `progress N [message]` on its stdout reports progress; other lines are
//!   copied to opsd's stdout and stderr, prefixed with the operation id;
//! - `OPSD_KEY` is removed from its environment, and it never sees the lease token;
//! - exit 0 finishes the operation `done`; any other exit fails it with error code
//!   `EXIT_<code>` and the last lines of its stderr as the message;
//! - a cancelled operation, a lost lease or the end of the shutdown grace period
//!   kills the command's whole process group.

use std::collections::VecDeque;
use std::time::Duration;

use clap::Args;
use opsd_client::{Kind, Task, TaskError, Worker, WorkerConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{Connection, parse_kind};
use crate::BoxError;

/// Flags of `opsd work`.
#[derive(Args)]
pub struct WorkArgs {
    #[command(flatten)]
    conn: Connection,
    /// Claim only from this project (required for a key limited to some projects).
    #[arg(long)]
    project_id: Option<String>,
    /// Claim only these kinds (repeat or comma-separate); any kind when absent.
    #[arg(long, value_delimiter = ',', value_parser = parse_kind)]
    kind: Vec<Kind>,
    /// Commands running at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Lease length; heartbeats go every third of it.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    lease: Duration,
    /// Worker name shown on its operations (default: host-pid).
    #[arg(long)]
    name: Option<String>,
    /// Longest pause between claims when there is nothing to do (with --project-id, a
    /// new pending operation wakes the worker at once).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    idle_poll: Duration,
    /// On Ctrl-C or SIGTERM, how long running commands may finish before they are
    /// killed and their operations marked unknown.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// The command to run for each operation.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Runs the worker until Ctrl-C or SIGTERM.
pub async fn run(args: WorkArgs) -> Result<(), BoxError> {
    // The SDK reports failed claims and heartbeats, lost leases and unrecordable
    // outcomes as warnings: show them (`OPSD_LOG` as for `serve`).
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPSD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let client = args.conn.client()?;
    let mut config = WorkerConfig::new("")
        .kinds(args.kind)
        .concurrency(args.concurrency)
        .lease(args.lease)
        .idle_poll(args.idle_poll)
        .shutdown_grace(args.grace);
    config.project_id = args.project_id;
    if let Some(name) = args.name {
        config.name = name;
    }
    eprintln!(
        "opsd work: worker \"{}\" claiming from {} ({} at once); Ctrl-C to stop",
        config.name,
        config.project_id.as_deref().unwrap_or("every project"),
        config.concurrency
    );
    let command = std::sync::Arc::new(args.command);
    let summary = Worker::new(client, config)
        .run(
            move |task| {
                let command = command.clone();
                async move { run_command(&command, task).await }
            },
            shutdown_signal(),
        )
        .await?;
    eprintln!(
        "opsd work: stopped; {} done, {} failed, {} cancelled, {} lost, {} released",
        summary.done, summary.failed, summary.cancelled, summary.lost, summary.released
    );
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    eprintln!("opsd work: shutting down; waiting for running commands");
}

/// Kills the command's process group when the handler is dropped (cancelled, lease
/// lost, shutdown), so that a shell's children go too.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Parses `progress N [message]` (any case, an optional `:` after the word).
fn progress_line(line: &str) -> Option<(u8, String)> {
    let rest = line.trim();
    let head = rest.get(..8)?;
    if !head.eq_ignore_ascii_case("progress") {
        return None;
    }
    let rest = rest[8..].trim_start_matches(':').trim_start();
    let (number, message) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let percent: u8 = number
        .trim_end_matches('%')
        .parse()
        .ok()
        .filter(|p| *p <= 100)?;
    Some((percent, message.trim().to_owned()))
}

async fn run_command(command: &[String], task: Task) -> Result<(), TaskError> {
    let op = task.operation().clone();
    let short = op.id.to_string();
    let mut cmd = if command.len() == 1 {
        let mut c = Command::new("sh");
        c.arg("-c").arg(&command[0]);
        c
    } else {
        let mut c = Command::new(&command[0]);
        c.args(&command[1..]);
        c
    };
    // The worker's API key is not the command's business.
    cmd.env_remove("OPSD_KEY")
        .env("OPSD_OPERATION_ID", op.id.to_string())
        .env("OPSD_PROJECT_ID", &op.project_id)
        .env("OPSD_KIND", op.kind.as_str())
        .env("OPSD_TYPE", op.op_type.as_str())
        .env("OPSD_RESOURCE_ID", &op.resource_id)
        .env(
            "OPSD_OPERATION",
            serde_json::to_string(&op).unwrap_or_default(),
        )
        .env_remove("TRACEPARENT")
        .env_remove("TRACESTATE");
    if let Some(cx) = &op.trace_context {
        cmd.env("TRACEPARENT", cx.traceparent());
        if let Some(state) = &cx.tracestate {
            cmd.env("TRACESTATE", state);
        }
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| TaskError::new("SPAWN_FAILED", format!("cannot run {}: {e}", command[0])))?;
    let _guard = GroupGuard(child.id());
    eprintln!(
        "[{short}] {} {} {}: started",
        op.kind, op.op_type, op.resource_id
    );
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out = async {
        let Some(stdout) = stdout else { return };
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match progress_line(&line) {
                Some((percent, message)) => task.progress(percent, message),
                None => println!("[{short}] {line}"),
            }
        }
    };
    let err = async {
        let mut last = VecDeque::new();
        let Some(stderr) = stderr else { return last };
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{short}] {line}");
            if last.len() == 5 {
                last.pop_front();
            }
            last.push_back(line);
        }
        last
    };
    let (_, last, status) = tokio::join!(out, err, child.wait());
    let status = status.map_err(|e| TaskError::new("WAIT_FAILED", e.to_string()))?;
    if status.success() {
        eprintln!("[{short}] done");
        return Ok(());
    }
    let code = status
        .code()
        .map_or_else(|| "SIGNALLED".to_owned(), |c| format!("EXIT_{c}"));
    let message = if last.is_empty() {
        format!("command exited with {status}")
    } else {
        Vec::from(last).join("\n")
    };
    eprintln!("[{short}] failed: {code}");
    Err(TaskError::new(code, message))
}

#[cfg(test)]
mod tests {
    use super::progress_line;

    #[test]
    fn progress_lines() {
        assert_eq!(
            progress_line("progress 40 copying"),
            Some((40, "copying".into()))
        );
        assert_eq!(progress_line("PROGRESS: 7%"), Some((7, String::new())));
        assert_eq!(progress_line("progress 250 x"), None);
        assert_eq!(progress_line("progressive"), None);
        assert_eq!(progress_line("hello"), None);
    }
}
