//! Worker leases: claim the oldest matching operation, heartbeat it, finish it. The
//! [`Worker`](crate::Worker) does all of this for you; these are the calls beneath.

use std::time::Duration;

use opsd_domain::{Kind, Status};
use serde::Serialize;
use uuid::Uuid;

use crate::retry::Idempotency::{Safe, Unsafe};
use crate::{Client, Lease, Renewed, Result};

/// What a worker asks for (the body of `POST /v1/operations/claim`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimRequest {
    /// Only this project (required for a key limited to some projects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Only these kinds; any when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<Kind>,
    /// `pending` (default) and/or `unknown` (reconcilers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<Status>,
    /// Lease length in seconds, 1–3600.
    pub lease_seconds: u64,
    /// Who is claiming, named when the lease expires.
    pub worker: String,
}

#[derive(Serialize)]
struct HeartbeatBody<'a> {
    lease_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_message: Option<&'a str>,
}

impl Client {
    /// Claims the oldest matching operation (moving it to `running` under a lease);
    /// `None` when there is nothing to claim.
    ///
    /// A claim is retried only when the server certainly did not receive it: a claim
    /// repeated after its answer was lost would take a second operation.
    ///
    /// ```no_run
    /// use opsd_client::{ClaimRequest, Kind};
    /// # async fn run(client: opsd_client::Client) -> opsd_client::Result<()> {
    /// let request = ClaimRequest {
    ///     project_id: Some("proj-1".into()),
    ///     kinds: vec![Kind::Vm],
    ///     statuses: vec![],
    ///     lease_seconds: 30,
    ///     worker: "host-7".into(),
    /// };
    /// if let Some(lease) = client.claim(&request).await? {
    ///     println!("working on {}", lease.operation.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn claim(&self, request: &ClaimRequest) -> Result<Option<Lease>> {
        let url = self.url("/v1/operations/claim");
        let response = self
            .send(Unsafe, Duration::ZERO, |h| h.post(&url).json(request))
            .await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        crate::decode(response).await.map(Some)
    }

    /// Renews a lease, optionally reporting progress (never lower than before) and a
    /// message. The answer's `operation.cancel_requested` tells a worker to stop.
    pub async fn heartbeat(
        &self,
        id: Uuid,
        lease_token: &str,
        progress: Option<u8>,
        status_message: Option<&str>,
    ) -> Result<Renewed> {
        let url = self.url(&format!("/v1/operations/{id}/heartbeat"));
        let body = HeartbeatBody {
            lease_token,
            progress,
            status_message,
        };
        self.json(Safe, |h| h.post(&url).json(&body)).await
    }
}
