//! `opsd ops …`: a small client for people at a terminal. It prints the server's JSON
//! as-is, so its output can be piped into `jq`.

use clap::{Args, Subcommand};

use crate::BoxError;

/// Flags of `opsd ops`.
#[derive(Args)]
pub struct OpsArgs {
    /// Base URL of the opsd server.
    #[arg(long, env = "OPSD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key (default: the contents of ./data/admin.key, if readable).
    #[arg(long, env = "OPSD_KEY", hide_env_values = true)]
    key: Option<String>,
    #[command(subcommand)]
    command: OpsCommand,
}

#[derive(Subcommand)]
enum OpsCommand {
    /// Print one operation.
    Get {
        /// The operation id.
        id: String,
    },
    /// Print one page of a project's operations.
    List {
        /// Project whose operations to list.
        #[arg(long)]
        project_id: String,
        /// Extra list filters as `name=value` (kind, status, type, resource_id, sort, cursor, limit…).
        #[arg(long = "filter", value_name = "NAME=VALUE")]
        filters: Vec<String>,
    },
}

/// Runs one client command.
pub async fn run(args: OpsArgs) -> Result<(), BoxError> {
    let base = args.url.trim_end_matches('/');
    let key = match args.key {
        Some(k) => k,
        None => std::fs::read_to_string("data/admin.key")
            .map(|k| k.trim().to_owned())
            .map_err(|_| "no API key: pass --key or set OPSD_KEY")?,
    };
    let client = reqwest::Client::new();
    let request = match args.command {
        OpsCommand::Get { id } => client.get(format!("{base}/v1/operations/{id}")),
        OpsCommand::List {
            project_id,
            filters,
        } => {
            let mut query = vec![("project_id".to_owned(), project_id)];
            for f in filters {
                let (k, v) = f
                    .split_once('=')
                    .ok_or_else(|| format!("--filter '{f}' is not NAME=VALUE"))?;
                query.push((k.to_owned(), v.to_owned()));
            }
            client.get(format!("{base}/v1/operations")).query(&query)
        }
    };
    let response = request.bearer_auth(key).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("server answered {status}").into())
    }
}
