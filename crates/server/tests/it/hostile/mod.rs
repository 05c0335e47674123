//! Hostile input (issue item 4): every limit at its boundary — exactly at the limit is
//! accepted, one over is a 400 naming the field (or 413 for the body) — strict JSON
//! (unknown fields, wrong types, duplicate keys, nulls, non-objects), content types, and
//! query strings (repeated, unknown, oversized, Google's standard parameters, filters and
//! `fields` masks nested absurdly deep). Every test ends by checking that the server still
//! answers and that operations stored before the barrage are byte-for-byte unchanged.

use std::time::Duration;

use opsd_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::overload::raw;
use crate::support::{Resp, TestClient, TestServer, id_of, new_op, op_path, unique_project};

/// Largest accepted body (`extract::MAX_BODY_BYTES`).
const MAX_BODY: usize = 1024 * 1024;
/// Longest accepted query string (`extract::MAX_QUERY_BYTES`).
const MAX_QUERY: usize = 16 * 1024;

// ---------------------------------------------------------------------------------------
// Witness: operations stored before the hostile requests, to prove nothing moved them.
// ---------------------------------------------------------------------------------------

/// Operations planted before a barrage, with everything a GET says about them.
pub struct Witness {
    project: String,
    ops: Vec<Value>,
    before: Vec<(String, String)>,
}

impl Witness {
    /// Plants four operations (pending with every optional field, running with warnings,
    /// failed with errors, done) through `admin`, and records how they read.
    pub async fn plant(admin: &TestClient) -> Self {
        let project = format!("witness-{}", uuid::Uuid::now_v7().simple());
        let mut rich = new_op(&project);
        rich["details"] = json!({"changes": {
            "cpu": {"from": 2, "to": 4},
            "ratio": {"from": 0.5, "to": 1.25},
            "on": {"from": false, "to": true},
            "name": {"from": "a", "to": "b – ünïcödé"},
            "tags": {"from": [], "to": ["x", "y"]},
        }});
        for (k, v) in [
            ("description", "witness"),
            ("request_id", "witness-req-1"),
            ("user", "alice"),
            ("region", "eu-1"),
            ("zone", "eu-1a"),
            ("target_link", "https://example.test/vm/1"),
        ] {
            rich[k] = json!(v);
        }
        let pending = admin.create(&rich).await;
        let running = admin.create(&new_op(&project)).await;
        admin
            .patch(
                &running,
                &json!({"status": "running", "progress": 40, "status_message": "halfway",
                    "warnings": [{"code": "W1", "message": "careful", "data": [{"key": "k", "value": "v"}]}]}),
            )
            .await;
        let failed = admin.create(&new_op(&project)).await;
        admin
            .patch(
                &failed,
                &json!({"status": "failed", "error": {"errors": [{"code": "E", "message": "boom", "location": "cpu"}]},
                    "http_error_status_code": 503, "http_error_message": "unavailable"}),
            )
            .await;
        let done = admin.create(&new_op(&project)).await;
        admin.patch(&done, &json!({"status": "done"})).await;
        let mut w = Witness {
            project,
            ops: vec![pending, running, failed, done],
            before: Vec::new(),
        };
        w.before = w.read(admin).await;
        w
    }

    /// The ids of the planted operations.
    pub fn ids(&self) -> Vec<String> {
        self.ops.iter().map(|op| id_of(op).to_owned()).collect()
    }

    /// The project the planted operations live in.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Every planted operation as both dialects render it, its history and its ETag, and
    /// the project's list.
    async fn read(&self, admin: &TestClient) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for op in &self.ops {
            let path = op_path(op);
            let r = admin.get_resp(&path, StatusCode::OK).await;
            out.push((path.clone(), format!("{} {}", r.header("etag"), r.text)));
            let events = format!("{path}/events");
            let r = admin.get_resp(&events, StatusCode::OK).await;
            out.push((events, r.text));
            let google = format!(
                "/deploymentmanager/v2/projects/{}/global/operations/operation-{}",
                self.project,
                id_of(op)
            );
            let r = admin.get_resp(&google, StatusCode::OK).await;
            out.push((google, r.text));
        }
        let list = admin
            .list(
                &[("project_id", &self.project), ("limit", "100")],
                StatusCode::OK,
            )
            .await;
        out.push(("list".into(), list.text));
        out
    }

    /// Asserts the server answers `/healthz` and the planted operations read exactly as
    /// they did when planted.
    pub async fn assert_unchanged(&self, admin: &TestClient) {
        let health = admin.get_resp("/healthz", StatusCode::OK).await;
        assert_eq!(health.text, "ok");
        let after = self.read(admin).await;
        assert_eq!(after.len(), self.before.len());
        for ((path, before), (_, after)) in self.before.iter().zip(&after) {
            assert_eq!(before, after, "{path} changed");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn s(n: usize) -> String {
    "x".repeat(n)
}

/// Creates `body` expecting a 400 naming `field`.
async fn create_fails_on(c: &TestClient, body: &Value, field: &str) -> Value {
    c.post_resp("/v1/operations", body, StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some(field))
}

/// PATCHes `path` with `body` expecting a 400 naming `field`.
async fn patch_fails_on(c: &TestClient, path: &str, body: &Value, field: &str) -> Value {
    c.patch_resp(path, body, &[], StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some(field))
}

/// Sends `raw` (labelled JSON) to `path` with `method`.
async fn send_raw(
    c: &TestClient,
    method: Method,
    path: &str,
    raw: impl Into<reqwest::Body>,
    expected: StatusCode,
) -> Resp {
    let request = c
        .request(method, path)
        .header("content-type", "application/json")
        .body(raw);
    c.send(request, expected).await
}

/// A create body for `project` with `field` set to `value`.
fn create_with(project: &str, field: &str, value: Value) -> Value {
    let mut b = new_op(project);
    b[field] = value;
    b
}

/// A create body whose `details.changes` is `changes`.
fn with_changes(project: &str, changes: Value) -> Value {
    create_with(project, "details", json!({ "changes": changes }))
}

/// A fresh operation of `project`, returning its path.
async fn fresh(c: &TestClient, project: &str) -> String {
    op_path(&c.create(&new_op(project)).await)
}

/// A `failed` patch carrying `n` errors.
fn failed_with_errors(n: usize) -> Value {
    let errors: Vec<Value> = (0..n)
        .map(|i| json!({"code": format!("E{i}"), "message": "m"}))
        .collect();
    json!({"status": "failed", "error": {"errors": errors}})
}

/// `n` warnings.
fn warnings(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"code": format!("W{i}"), "message": "m"}))
            .collect(),
    )
}

/// Checks a Google-shaped error: `{"error": {"code", "message", "errors": [{…,
/// "location"}], "status"}}` with the given HTTP status and (if any) the field at fault.
fn google_error(resp: &Resp, status: StatusCode, location: Option<&str>) -> Value {
    assert_eq!(resp.status, status, "{}", resp.text);
    let body = resp.json();
    let error = &body["error"];
    assert_eq!(error["code"], status.as_u16(), "{body}");
    assert!(
        !error["message"].as_str().unwrap_or_default().is_empty(),
        "{body}"
    );
    assert!(error["status"].is_string(), "{body}");
    if let Some(location) = location {
        assert_eq!(error["errors"][0]["location"], location, "{body}");
    }
    body
}

/// `GET path?raw_query`, with the query sent as given (reqwest only percent-encodes
/// characters a URL may not hold).
async fn get_raw_query(c: &TestClient, path: &str, raw_query: &str, expected: StatusCode) -> Resp {
    c.send(
        c.request(Method::GET, &format!("{path}?{raw_query}")),
        expected,
    )
    .await
}

fn google_list(project: &str) -> String {
    format!("/deploymentmanager/v2/projects/{project}/global/operations")
}

/// `http://host:port` of the server `c` talks to.
fn origin(c: &TestClient) -> String {
    let url = c.url("/", &[]);
    format!("http://{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

mod bodies;
mod collections;
mod json;
mod query;
mod strings;
