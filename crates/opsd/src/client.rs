//! `opsd ops …`: a small client for people at a terminal. It prints the server's JSON
//! as-is, so its output can be piped into `jq`; `watch` prints one JSON line per change.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::BoxError;
use crate::sse;

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
    /// Wait until an operation is done or failed (or the timeout passes), then print it.
    Wait {
        /// The operation id.
        id: String,
        /// How long the server waits, at most 120s.
        #[arg(long, default_value = "60s")]
        timeout: String,
    },
    /// Print a project's changes as they commit, one JSON line each; reconnects and
    /// resumes where it stopped. Stop it with Ctrl-C.
    Watch {
        /// Project to watch.
        #[arg(long)]
        project_id: String,
        /// Filters as `name=value` (kind, status, type, resource_id).
        #[arg(long = "filter", value_name = "NAME=VALUE")]
        filters: Vec<String>,
        /// Resume after this event id (0: from the oldest retained change).
        #[arg(long)]
        last_event_id: Option<u64>,
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
    let mut headers = reqwest::header::HeaderMap::new();
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| "the API key contains characters that cannot go in a header")?;
    auth.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;
    let request = match args.command {
        OpsCommand::Get { id } => client.get(format!("{base}/v1/operations/{id}")),
        OpsCommand::List {
            project_id,
            filters,
        } => client
            .get(format!("{base}/v1/operations"))
            .query(&query(project_id, &filters)?),
        OpsCommand::Wait { id, timeout } => client
            .get(format!("{base}/v1/operations/{id}/wait"))
            .query(&[("timeout", timeout)]),
        OpsCommand::Watch {
            project_id,
            filters,
            last_event_id,
        } => {
            let url = format!("{base}/v1/operations/watch");
            return watch(&client, &url, &query(project_id, &filters)?, last_event_id).await;
        }
    };
    let response = request.send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("server answered {status}").into())
    }
}

fn query(project_id: String, filters: &[String]) -> Result<Vec<(String, String)>, BoxError> {
    let mut query = vec![("project_id".to_owned(), project_id)];
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| format!("--filter '{f}' is not NAME=VALUE"))?;
        query.push((k.to_owned(), v.to_owned()));
    }
    Ok(query)
}

/// Streams the watch, printing each change's JSON on its own line. When the connection
/// drops it reconnects with `Last-Event-ID`, so nothing is missed or repeated; a
/// `reset` (history gone) is reported on stderr.
async fn watch(
    client: &reqwest::Client,
    url: &str,
    query: &[(String, String)],
    mut last_event_id: Option<u64>,
) -> Result<(), BoxError> {
    loop {
        let mut request = client.get(url).query(query);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        match request.send().await {
            Ok(mut response) if response.status().is_success() => {
                let mut parser = sse::Parser::default();
                while let Ok(Some(chunk)) = response.chunk().await {
                    for event in parser.push(&chunk) {
                        match event.event.as_str() {
                            "operation" => println!("{}", event.data),
                            "reset" => eprintln!("opsd: watch reset: {}", event.data),
                            _ => {}
                        }
                    }
                    if let Some(id) = parser.last_event_id().and_then(|id| id.parse().ok()) {
                        last_event_id = Some(id);
                    }
                }
                eprintln!("opsd: watch stream ended; resuming");
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                return Err(format!("server answered {status}: {body}").into());
            }
            Err(e) => eprintln!("opsd: watch: {e}; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
