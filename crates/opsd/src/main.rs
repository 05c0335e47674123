//! `opsd`: one binary for the server and its tools. This file only parses flags; each
//! subcommand lives in its own module.

mod client;
mod keys;
mod serve;
mod sse;
mod storage;

/// Errors of the subcommands, printed by `main`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// Manage API keys directly in the store (the server may be down).
    Keys(keys::KeysArgs),
    /// Talk to a running opsd: get, list, wait for and watch operations.
    Ops(client::OpsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("opsd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Migrate(store) => serve::migrate(&store).await,
            Command::Keys(args) => keys::run(args).await,
            Command::Ops(args) => client::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("opsd: {e}");
            ExitCode::FAILURE
        }
    }
}
