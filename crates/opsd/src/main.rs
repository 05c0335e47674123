//! `opsd`: one binary for the server and its tools. This file only parses flags; each
//! subcommand lives in its own module.

mod backup;
mod cli;
mod copy;
mod keys;
mod serve;
mod storage;

/// Errors of the subcommands, printed by `main`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// opsd — the operations service of a cloud control plane.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit (`serve` also applies them at start-up).
    Migrate(storage::StoreArgs),
    /// Back up a SQLite store while opsd serves it: from its data directory, or by asking
    /// the server (POST /v1/admin/backup).
    Backup(backup::BackupArgs),
    /// Restore a backup into a data directory (opsd stopped); starts a new epoch.
    Restore(backup::RestoreArgs),
    /// Copy a whole store into another (SQLite and PostgreSQL, either way): one pass,
    /// resumable, then a verification. See docs/backup-and-move.md.
    Copy(copy::CopyArgs),
    /// Manage API keys directly in the store (the server may be down).
    Keys(keys::KeysArgs),
    /// Talk to a running opsd: get, list, create, update, cancel, claim, wait for and
    /// watch operations.
    Ops(cli::OpsArgs),
    /// Claim operations and run a shell command for each (a worker for scripts).
    Work(cli::work::WorkArgs),
    /// Print a shell completion script: `opsd completions bash > /etc/bash_completion.d/opsd`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// jemalloc instead of glibc's malloc. Measured with 10,000 parked waits (each holds
/// hyper's two 8 KiB connection buffers, mostly unwritten while it sleeps): glibc touched
/// most of those pages (265 MiB resident), jemalloc leaves untouched ones unmapped
/// (191 MiB), with no loss on the read path. Its options are built in from
/// `.cargo/config.toml`: freed pages go back to the system after 100 ms, so connections
/// that close after their answer do not keep the peak up (ARCHITECTURE.md, "Memory of a
/// parked wait").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "opsd", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            // Not eprintln!, which panics when stderr cannot be written.
            let _ = writeln!(
                std::io::stderr(),
                "opsd: cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await.map(|()| cli::Exit::Ok),
            Command::Migrate(store) => serve::migrate(&store).await.map(|()| cli::Exit::Ok),
            Command::Backup(args) => backup::backup(args).await.map(|()| cli::Exit::Ok),
            Command::Restore(args) => backup::restore(args).await.map(|()| cli::Exit::Ok),
            Command::Copy(args) => copy::run(args).await.map(|()| cli::Exit::Ok),
            Command::Keys(args) => keys::run(args).await.map(|()| cli::Exit::Ok),
            Command::Ops(args) => cli::run(args).await,
            Command::Work(args) => cli::work::run(args).await.map(|()| cli::Exit::Ok),
            Command::Completions { .. } => Ok(cli::Exit::Ok),
        }
    });
    // The log thread's last lines (why the server stopped) go out before the exit.
    opsd_server::log::flush(std::time::Duration::from_secs(2));
    match result {
        Ok(cli::Exit::Ok) => ExitCode::SUCCESS,
        Ok(cli::Exit::Code(code)) => ExitCode::from(code),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "opsd: {e}");
            ExitCode::FAILURE
        }
    }
}
