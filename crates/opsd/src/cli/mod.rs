//! `opsd ops …` and `opsd work`: the command line on top of the `opsd-client` SDK.
//! People get tables (`render`), scripts get `-o json`; `wait` draws a live progress
//! bar fed by the watch stream (`wait`); `opsd work` runs a shell command for each
//! claimed operation (`work`). Every server error is printed with its message and field
//! (the SDK's `ApiError` display).
//!
//! Exit codes of `opsd ops wait`: 0 done, 3 failed, 4 still unfinished when the timeout
//! passed, 5 no such operation; 1 any other error, 2 a usage error (clap).

mod commands;
mod render;
mod wait;
pub mod work;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use opsd_client::{Client, Kind, OpType, Status};

use crate::BoxError;

/// Where the server is and which key to use (shared by `opsd ops` and `opsd work`).
#[derive(Args, Clone)]
pub struct Connection {
    /// Base URL of the opsd server.
    #[arg(
        long,
        env = "OPSD_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// API key (default: the contents of ./data/admin.key, if readable).
    #[arg(long, env = "OPSD_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
    /// PEM certificate to trust (for a server with a self-signed certificate).
    #[arg(long, env = "OPSD_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
}

impl Connection {
    /// An SDK client for this server and key.
    pub fn client(&self) -> Result<Client, BoxError> {
        let key = match &self.key {
            Some(k) => k.clone(),
            None => std::fs::read_to_string("data/admin.key")
                .map(|k| k.trim().to_owned())
                .map_err(|_| "no API key: pass --key or set OPSD_KEY")?,
        };
        // A command run by `opsd work` finds the operation's trace context in TRACEPARENT
        // and carries it on.
        let mut builder = Client::builder(&self.url)
            .api_key(key)
            .trace_context_from_env();
        if let Some(path) = &self.ca_cert {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            builder = builder.add_root_certificate_pem(&pem);
        }
        Ok(builder.build()?)
    }
}

/// Output format.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables and readable lines, for people.
    Table,
    /// JSON (one document, or one line per event for `watch`), for scripts.
    Json,
}

/// Flags of `opsd ops`.
#[derive(Args)]
pub struct OpsArgs {
    #[command(flatten)]
    conn: Connection,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    output: Output,
    #[command(subcommand)]
    command: OpsCommand,
}

/// List and watch filters.
#[derive(Args, Clone, Default)]
pub struct Filters {
    /// Project (required).
    #[arg(long)]
    pub project_id: String,
    /// Only this kind (vm, volume, vpc, …).
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<Kind>,
    /// Only this status (pending, running, done, failed, unknown).
    #[arg(long, value_parser = parse_status)]
    pub status: Option<Status>,
    /// Only this type (create, update, delete, restart).
    #[arg(long = "type", value_parser = parse_type)]
    pub op_type: Option<OpType>,
    /// Only this resource.
    #[arg(long)]
    pub resource_id: Option<String>,
    /// More filters as `name=value` (kind, status, type, resource_id, sort, limit…).
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    pub filters: Vec<String>,
}

#[derive(Subcommand)]
enum OpsCommand {
    /// Show one operation.
    Get {
        /// The operation id.
        id: uuid::Uuid,
    },
    /// List a project's operations (one page, or every page with --all).
    List {
        #[command(flatten)]
        filters: Filters,
        /// Sort, e.g. `created_at:asc` (default `created_at:desc`).
        #[arg(long)]
        sort: Option<String>,
        /// Page size, 1–100.
        #[arg(long)]
        limit: Option<u8>,
        /// Start at this cursor (from a previous page).
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Follow the cursors and list every matching operation.
        #[arg(long)]
        all: bool,
    },
    /// Show an operation's history.
    Events {
        /// The operation id.
        id: uuid::Uuid,
    },
    /// Wait for an operation to finish, with a live progress bar.
    ///
    /// Exit codes: 0 done, 3 failed, 4 timed out (still unfinished), 5 not found,
    /// 1 other errors.
    Wait {
        /// The operation id.
        id: uuid::Uuid,
        /// How long to wait (any length: `30s`, `10m`, `2h`).
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Print a project's changes as they commit; reconnects and resumes by itself.
    /// Stop it with Ctrl-C.
    Watch {
        #[command(flatten)]
        filters: Filters,
        /// Start after this event id (0: from the oldest retained change).
        #[arg(long, alias = "last-event-id")]
        after: Option<u64>,
    },
    /// Create an operation (status pending).
    Create(commands::CreateArgs),
    /// Change an operation's status, progress or message.
    Update(commands::UpdateArgs),
    /// Ask to cancel an operation (pending: failed at once; running: its worker stops).
    Cancel {
        /// The operation id.
        id: uuid::Uuid,
    },
    /// Claim the oldest pending operation and print it with its lease token.
    Claim(commands::ClaimArgs),
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::parse(s).ok_or_else(|| format!("'{s}' is not a kind; use one of {}", Kind::expected()))
}

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s)
        .ok_or_else(|| format!("'{s}' is not a status; use one of {}", Status::expected()))
}

fn parse_type(s: &str) -> Result<OpType, String> {
    OpType::parse(s)
        .ok_or_else(|| format!("'{s}' is not a type; use one of {}", OpType::expected()))
}

/// How a command ended, beyond success and error (the exit codes of `wait`).
pub enum Exit {
    /// Exit 0.
    Ok,
    /// A documented non-zero exit code, with nothing more to print.
    Code(u8),
}

/// Runs one `opsd ops` command.
pub async fn run(args: OpsArgs) -> Result<Exit, BoxError> {
    let client = args.conn.client()?;
    let out = args.output;
    match args.command {
        OpsCommand::Get { id } => render::operation(out, &client.get(id).await?)?,
        OpsCommand::List {
            filters,
            sort,
            limit,
            cursor,
            all,
        } => {
            let mut query = commands::list_query(&filters)?;
            query.sort = sort.or(query.sort);
            query.limit = limit.or(query.limit);
            commands::list(&client, out, query, cursor, all).await?;
        }
        OpsCommand::Events { id } => render::events(out, &client.events(id).await?)?,
        OpsCommand::Wait { id, timeout } => return wait::run(&client, out, id, timeout).await,
        OpsCommand::Watch { filters, after } => {
            commands::watch(&client, out, &filters, after).await?
        }
        OpsCommand::Create(a) => render::operation(out, &client.create(&a.into_new()?).await?)?,
        OpsCommand::Update(a) => {
            let (id, patch, version) = a.into_patch();
            render::operation(out, &client.update(id, &patch, version).await?)?;
        }
        OpsCommand::Cancel { id } => render::operation(out, &client.cancel(id).await?)?,
        OpsCommand::Claim(a) => commands::claim(&client, out, a).await?,
    }
    Ok(Exit::Ok)
}
