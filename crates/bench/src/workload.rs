//! What the benchmark sends: realistic operations (a VM resize with a few diffs, a user,
//! a region, an idempotency key — about what a control plane records) and the HTTP
//! requests of each scenario. Seeding, the API load and the storage ceiling all build
//! their rows from [`new_operation`], so they write the same bytes (the storage ceiling
//! adds the idempotency [`fingerprint`] that opsd computes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST, IF_MATCH};
use opsd_domain::{Details, Kind, NewOperation, OpType};
use serde_json::json;
use uuid::Uuid;

use crate::loadgen::{MakeReq, Req};

/// The `i`-th operation of `project`. `tag` keeps idempotency keys of different
/// batches apart (a repeated key would be an idempotent replay, not a create).
pub fn new_operation(project: &str, tag: &str, i: u64) -> NewOperation {
    const KINDS: [Kind; 4] = [Kind::Vm, Kind::Volume, Kind::Vpc, Kind::NksNodePool];
    let kind = KINDS[(i % KINDS.len() as u64) as usize];
    let details: Details = serde_json::from_value(json!({"changes": {
        "cpu": {"from": 2, "to": 4},
        "memory_gb": {"from": 8, "to": 16},
        "tags": {"from": ["web"], "to": ["web", "canary"]},
    }}))
    .unwrap_or_default();
    NewOperation {
        project_id: project.into(),
        kind,
        op_type: OpType::Update,
        resource_id: format!("{}-{i:08}", kind.as_str()),
        details,
        description: Some(format!(
            "Resize {}-{i:08} to 4 vCPU / 16 GiB",
            kind.as_str()
        )),
        request_id: Some(format!("{tag}-{i:010}")),
        user: Some("alice@example.com".into()),
        region: Some("us-east-1".into()),
        zone: Some("us-east-1a".into()),
        target_link: None,
        trace_context: None,
    }
}

/// A stand-in for the 16-byte idempotency fingerprint opsd stores beside `request_id`
/// (`opsd_store::rules::request_hash`): the same bytes in the row, without the JSON
/// serialization and SHA-256 that compute it, which are opsd's work, not storage's.
pub fn fingerprint(i: u64) -> Vec<u8> {
    (u128::from(i) * 0x9E37_79B9_7F4A_7C15)
        .to_be_bytes()
        .to_vec()
}

fn request(method: &str, uri: &str, body: Option<Vec<u8>>) -> Req {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(HOST, "127.0.0.1");
    if body.is_some() {
        b = b.header(CONTENT_TYPE, "application/json");
    }
    // Method, URI and headers are built from valid constants and ids: cannot fail.
    b.body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap_or_default()
}

/// `GET /v1/operations/{id}`.
pub fn get(id: Uuid) -> Req {
    request("GET", &format!("/v1/operations/{id}"), None)
}

/// Deployment Manager's `operations.get` of operation `id` of `project`.
pub fn google_get(project: &str, id: Uuid) -> Req {
    let path = format!("/deploymentmanager/v2/projects/{project}/global/operations/operation-{id}");
    request("GET", &path, None)
}

/// `read` of each of `ids` once, in order, then no more requests: a load phase that
/// reads every operation once (how the read scenarios warm a server's read cache).
pub fn each_once(
    ids: Arc<Vec<Uuid>>,
    read: impl Fn(Uuid) -> Req + Send + Sync + 'static,
) -> MakeReq {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |_| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        ids.get(i).map(|id| read(*id))
    })
}

/// `GET /metrics` (the read cache's hit and miss counters).
pub fn metrics() -> Req {
    request("GET", "/metrics", None)
}

/// `GET /v1/operations?project_id=…&status=…&limit=…[&cursor=…]`.
pub fn list(project: &str, status: &str, limit: usize, cursor: Option<&str>) -> Req {
    let mut uri = format!("/v1/operations?project_id={project}&status={status}&limit={limit}");
    if let Some(c) = cursor {
        uri.push_str("&cursor=");
        uri.push_str(c);
    }
    request("GET", &uri, None)
}

/// `POST /v1/operations`.
pub fn create(new: &NewOperation) -> Req {
    request("POST", "/v1/operations", serde_json::to_vec(new).ok())
}

/// `POST /v1/operations` of a new operation of `project` each time, the `i`-th for the
/// `i`-th request (`tag` as in [`new_operation`]).
pub fn creates(project: String, tag: &'static str) -> MakeReq {
    let next = Arc::new(AtomicU64::new(0));
    Arc::new(move |_| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        Some(create(&new_operation(&project, tag, i)))
    })
}

/// `PATCH /v1/operations/{id}` to `done`, conditional on `version`.
pub fn finish(id: Uuid, version: u64) -> Req {
    let mut req = request(
        "PATCH",
        &format!("/v1/operations/{id}"),
        Some(br#"{"status":"done","status_message":"resized"}"#.to_vec()),
    );
    if let Ok(v) = format!("\"{version}\"").parse() {
        req.headers_mut().insert(IF_MATCH, v);
    }
    req
}

/// `GET /v1/operations/{id}/wait?timeout=…` (docs/live-operations.md).
pub fn wait(id: Uuid, timeout_s: u64) -> Req {
    request(
        "GET",
        &format!("/v1/operations/{id}/wait?timeout={timeout_s}s"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_valid_and_distinct() {
        let a = new_operation("p", "t", 1);
        let b = new_operation("p", "t", 2);
        a.validate().expect("valid");
        assert_ne!(a.request_id, b.request_id);
        assert_eq!(a.details.changes.len(), 3);
    }

    #[test]
    fn requests_carry_what_the_api_needs() {
        let id = Uuid::now_v7();
        let r = finish(id, 2);
        assert_eq!(r.method(), "PATCH");
        assert_eq!(r.headers()[IF_MATCH], "\"2\"");
        let l = list("p", "pending", 10, Some("abc"));
        assert_eq!(
            l.uri(),
            "/v1/operations?project_id=p&status=pending&limit=10&cursor=abc"
        );
    }
}
