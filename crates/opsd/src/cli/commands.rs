//! The producer commands (`create`, `update`, `claim`) and the streaming ones (`list
//! --all`, `watch`): flags to SDK calls.

use std::time::Duration;

use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use opsd_client::{
    ClaimRequest, Client, Details, ErrorItem, Kind, ListQuery, NewOperation, OpType,
    OperationError, OperationPatch, Status, WatchEvent, WatchQuery,
};

use super::{Filters, Output, parse_kind, parse_status, parse_type, render};
use crate::BoxError;

/// Flags of `opsd ops create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Project of the operation.
    #[arg(long)]
    project_id: String,
    /// Kind of resource (vm, volume, vpc, …).
    #[arg(long, value_parser = parse_kind)]
    kind: Kind,
    /// create, update, delete or restart.
    #[arg(long = "type", value_parser = parse_type)]
    op_type: OpType,
    /// The resource acted on.
    #[arg(long)]
    resource_id: String,
    /// Idempotency key: running the same command again returns the same operation.
    #[arg(long)]
    request_id: Option<String>,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    /// Field diffs as JSON, e.g. '{"changes": {"cpu": {"from": 2, "to": 4}}}'.
    #[arg(long)]
    details: Option<String>,
}

impl CreateArgs {
    /// The SDK request.
    pub fn into_new(self) -> Result<NewOperation, BoxError> {
        let mut new = NewOperation::new(self.project_id, self.kind, self.op_type, self.resource_id);
        new.request_id = self.request_id;
        new.description = self.description;
        if let Some(d) = self.details {
            let details: Details =
                serde_json::from_str(&d).map_err(|e| format!("--details: {e}"))?;
            new.details = Some(details);
        }
        Ok(new)
    }
}

/// Flags of `opsd ops update`.
#[derive(Args)]
pub struct UpdateArgs {
    /// The operation id.
    id: uuid::Uuid,
    /// New status.
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    /// New progress, 0–100.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    progress: Option<u8>,
    /// New status message.
    #[arg(long)]
    message: Option<String>,
    /// Error code (with --status failed).
    #[arg(long, requires = "error_message")]
    error_code: Option<String>,
    /// Error message (with --status failed).
    #[arg(long, requires = "error_code")]
    error_message: Option<String>,
    /// Apply only at this version (If-Match).
    #[arg(long)]
    if_version: Option<u64>,
    /// The lease token of a claimed operation.
    #[arg(long, env = "OPSD_LEASE_TOKEN", hide_env_values = true)]
    lease_token: Option<String>,
}

impl UpdateArgs {
    /// The operation, the SDK patch and the expected version.
    pub fn into_patch(self) -> (uuid::Uuid, OperationPatch, Option<u64>) {
        let error = self
            .error_code
            .zip(self.error_message)
            .map(|(code, message)| OperationError {
                errors: vec![ErrorItem {
                    code,
                    message,
                    location: None,
                }],
            });
        let patch = OperationPatch {
            status: self.status,
            progress: self.progress,
            status_message: self.message,
            error,
            lease_token: self.lease_token,
            ..OperationPatch::default()
        };
        (self.id, patch, self.if_version)
    }
}

/// Flags of `opsd ops claim`.
#[derive(Args)]
pub struct ClaimArgs {
    /// Claim only from this project.
    #[arg(long)]
    project_id: Option<String>,
    /// Claim only these kinds (repeat or comma-separate).
    #[arg(long, value_delimiter = ',', value_parser = parse_kind)]
    kind: Vec<Kind>,
    /// Lease length (whole seconds, 1s–1h).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    lease: Duration,
    /// Worker name shown on the operation.
    #[arg(long, default_value = "opsd-cli")]
    worker: String,
}

/// The SDK query for `filters` (flags first, then `--filter name=value`).
pub fn list_query(filters: &Filters) -> Result<ListQuery, BoxError> {
    let mut q = ListQuery::new(&filters.project_id);
    q.kind = filters.kind;
    q.status = filters.status;
    q.op_type = filters.op_type;
    q.resource_id.clone_from(&filters.resource_id);
    for f in &filters.filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| format!("--filter '{f}' is not NAME=VALUE"))?;
        match k {
            "kind" => q.kind = Some(parse_kind(v)?),
            "status" => q.status = Some(parse_status(v)?),
            "type" => q.op_type = Some(parse_type(v)?),
            "resource_id" => q.resource_id = Some(v.to_owned()),
            "sort" => q.sort = Some(v.to_owned()),
            "limit" => {
                q.limit = Some(
                    v.parse()
                        .map_err(|_| format!("--filter limit={v}: not 1–100"))?,
                )
            }
            _ => {
                return Err(format!(
                    "--filter {k}: unknown; use kind, status, type, resource_id, sort or limit"
                )
                .into());
            }
        }
    }
    Ok(q)
}

/// `opsd ops list`: one page (with where to go next on stderr), or every page.
pub async fn list(
    client: &Client,
    out: Output,
    query: ListQuery,
    cursor: Option<String>,
    all: bool,
) -> Result<(), BoxError> {
    if all {
        let items: Vec<_> = client.list(query).try_collect().await?;
        return render::operations(out, &items, None);
    }
    let page = client.list_page(&query, cursor.as_deref()).await?;
    render::operations(out, &page.items, Some(&page.pagination))
}

/// `opsd ops watch`: one line per change until interrupted.
pub async fn watch(
    client: &Client,
    out: Output,
    filters: &Filters,
    after: Option<u64>,
) -> Result<(), BoxError> {
    let list = list_query(filters)?;
    let query = WatchQuery {
        project_id: list.project_id,
        kind: list.kind,
        status: list.status,
        op_type: list.op_type,
        resource_id: list.resource_id,
        after,
    };
    let mut events = Box::pin(client.watch(query));
    while let Some(event) = events.next().await {
        match event? {
            WatchEvent::Changed { seq, operation } => render::change(out, seq, &operation)?,
            WatchEvent::Reset { seq, message } => {
                eprintln!("opsd: watch reset at event {seq}: {message}");
            }
        }
    }
    Ok(())
}

/// `opsd ops claim`.
pub async fn claim(client: &Client, out: Output, a: ClaimArgs) -> Result<(), BoxError> {
    let request = ClaimRequest {
        project_id: a.project_id,
        kinds: a.kind,
        statuses: Vec::new(),
        lease_seconds: a.lease.as_secs().max(1),
        worker: a.worker,
    };
    match client.claim(&request).await? {
        Some(lease) => render::lease(out, &lease),
        None => {
            eprintln!("nothing to claim");
            Ok(())
        }
    }
}
