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

// ---------------------------------------------------------------------------------------
// Body size and media type
// ---------------------------------------------------------------------------------------

/// A valid create body padded with whitespace to exactly `len` bytes.
fn padded_create(project: &str, len: usize) -> Vec<u8> {
    let body = serde_json::to_vec(&new_op(project)).unwrap();
    assert!(body.len() < len);
    let mut out = Vec::with_capacity(len);
    out.push(b'{');
    out.resize(len - body.len() + 1, b' ');
    out.extend_from_slice(&body[1..]);
    assert_eq!(out.len(), len);
    out
}

#[tokio::test]
async fn body_of_exactly_one_mib_is_accepted_one_byte_more_is_413() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();

    let at_limit = padded_create(&p, MAX_BODY);
    send_raw(
        c,
        Method::POST,
        "/v1/operations",
        at_limit,
        StatusCode::CREATED,
    )
    .await;

    let over = padded_create(&p, MAX_BODY + 1);
    send_raw(
        c,
        Method::POST,
        "/v1/operations",
        over,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await
    .assert_error("payload_too_large", None);

    // PATCH and key creation share the limit.
    let path = op_path(&w.ops[0]);
    let mut patch = b"{\"status_message\": \"hi\"".to_vec();
    patch.resize(MAX_BODY + 1, b' ');
    patch.push(b'}');
    send_raw(
        c,
        Method::PATCH,
        &path,
        patch,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await
    .assert_error("payload_too_large", None);
    let mut key = b"{\"name\": \"k\", \"role\": \"admin\", \"projects\": [\"*\"]".to_vec();
    key.resize(8 * MAX_BODY, b' ');
    key.push(b'}');
    send_raw(
        c,
        Method::POST,
        "/v1/api_keys",
        key,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await
    .assert_error("payload_too_large", None);

    // A body of 16 MiB is refused just the same, without the server reading it all into
    // memory first or dropping the connection.
    send_raw(
        c,
        Method::POST,
        "/v1/operations",
        vec![b' '; 16 * MAX_BODY],
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await
    .assert_error("payload_too_large", None);
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn a_chunked_body_without_length_over_one_mib_is_413() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    // `transfer-encoding: chunked` and no content-length, so the limit has to be enforced
    // while reading, not from the header. Written over a raw socket in the background:
    // the server may answer (and stop reading) before the client is done writing.
    let key = TestClient::mint_key(&server.store, Role::Admin, &["*"]).await;
    let mut request = format!(
        "POST /v1/operations HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 64 * 1024];
    request.extend_from_slice(b"1\r\n{\r\n");
    for _ in 0..32 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"1\r\n}\r\n0\r\n\r\n");
    let mut conn = raw::Conn::open(c).await;
    let writing = conn.write_in_background(request);
    let r = conn.response_within(Duration::from_secs(10)).await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "payload_too_large");
    writing.abort();

    // Exactly at the limit, chunked, is fine (reqwest sends a file body chunked).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, padded_create(&unique_project(), MAX_BODY)).unwrap();
    let body = reqwest::Body::from(tokio::fs::File::open(&file).await.unwrap());
    let request = c
        .request(Method::POST, "/v1/operations")
        .header("content-type", "application/json")
        .body(body);
    c.send(request, StatusCode::CREATED).await;
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn only_json_content_types_are_accepted() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let body = serde_json::to_vec(&new_op(&unique_project())).unwrap();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/xml",
        "json",
        "",
    ] {
        let request = c
            .request(Method::POST, "/v1/operations")
            .header("content-type", ct)
            .body(body.clone());
        c.send(request, StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .await
            .assert_error("unsupported_media_type", None);
    }
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
    ] {
        let request = c
            .request(Method::POST, "/v1/operations")
            .header("content-type", ct)
            .body(serde_json::to_vec(&new_op(&unique_project())).unwrap());
        c.send(request, StatusCode::CREATED).await;
    }
    // PATCH and key creation are as strict.
    let path = op_path(&w.ops[0]);
    let request = c
        .request(Method::PATCH, &path)
        .header("content-type", "text/plain")
        .body(r#"{"status": "running"}"#);
    c.send(request, StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .await
        .assert_error("unsupported_media_type", None);
    let request = c
        .request(Method::POST, "/v1/api_keys")
        .header("content-type", "text/plain")
        .body(r#"{"name": "k", "role": "admin", "projects": ["*"]}"#);
    c.send(request, StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .await
        .assert_error("unsupported_media_type", None);
    w.assert_unchanged(c).await;
}

// ---------------------------------------------------------------------------------------
// Ids: length and character set
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn project_id_is_1_to_128_of_its_charset() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let at_limit = format!("Az09._-{}", "p".repeat(121));
    assert_eq!(at_limit.len(), 128);
    c.create(&new_op(&at_limit)).await;
    c.list(&[("project_id", &at_limit)], StatusCode::OK).await;
    c.get_resp(&google_list(&at_limit), StatusCode::OK).await;

    let over = "p".repeat(129);
    let bad = [
        over.as_str(),
        "",
        "a b",
        "a/b",
        "a:b",
        "a\\b",
        "a%2Fb",
        "a?b",
        "é",
        "a\u{0}b",
        "a\nb",
        "proj\u{200b}",
        "ｐｒｏｊ",
    ];
    for p in bad {
        create_fails_on(c, &new_op(p), "project_id").await;
        if !p.is_empty() {
            c.list(&[("project_id", p)], StatusCode::BAD_REQUEST)
                .await
                .assert_error("invalid_argument", Some("project_id"));
        }
    }
    // In a Google path, the project is validated too (percent-decoded first).
    for p in [over.as_str(), "a%20b", "a%2Fb", "%C3%A9", "a%00b", "a:b"] {
        let resp = c.get_resp(&google_list(p), StatusCode::BAD_REQUEST).await;
        google_error(&resp, StatusCode::BAD_REQUEST, Some("project"));
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn resource_id_is_1_to_128_of_its_charset() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let at_limit = format!("vms/a:b._-{}", "r".repeat(118));
    assert_eq!(at_limit.len(), 128);
    c.create(&create_with(&p, "resource_id", json!(at_limit)))
        .await;
    c.list(
        &[("project_id", &p), ("resource_id", &at_limit)],
        StatusCode::OK,
    )
    .await;
    let over = "r".repeat(129);
    for r in [
        over.as_str(),
        "",
        "vm 1",
        "vm\t1",
        "vm?1",
        "vm#1",
        "vm%1",
        "vm\\1",
        "vm@1",
        "é",
        "vm\u{7f}",
    ] {
        create_fails_on(c, &create_with(&p, "resource_id", json!(r)), "resource_id").await;
        if !r.is_empty() {
            c.list(
                &[("project_id", &p), ("resource_id", r)],
                StatusCode::BAD_REQUEST,
            )
            .await
            .assert_error("invalid_argument", Some("resource_id"));
        }
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn request_id_is_1_to_128_printable_ascii() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let at_limit = format!("!~\"{{}}<>`'{}", "q".repeat(119));
    assert_eq!(at_limit.len(), 128);
    c.create(&create_with(&p, "request_id", json!(at_limit)))
        .await;
    for r in [
        "q".repeat(129).as_str(),
        "",
        "a b",
        "a\tb",
        "é",
        "a\u{7f}",
        "a\u{0}",
    ] {
        create_fails_on(c, &create_with(&p, "request_id", json!(r)), "request_id").await;
    }
    w.assert_unchanged(c).await;
}

// ---------------------------------------------------------------------------------------
// Free text and labels
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn description_and_status_message_are_at_most_4096_bytes() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    // Bytes, not characters: 2048 two-byte characters fill the limit exactly.
    let wide = "é".repeat(2048);
    assert_eq!(wide.len(), 4096);
    for ok in [s(4096), wide.clone(), "line\nnext\ttab".into()] {
        c.create(&create_with(&p, "description", json!(ok))).await;
    }
    for bad in [
        s(4097),
        format!("{wide}x"),
        "bell\u{7}".into(),
        "nul\u{0}".into(),
    ] {
        create_fails_on(
            c,
            &create_with(&p, "description", json!(bad)),
            "description",
        )
        .await;
    }

    let path = fresh(c, &p).await;
    for ok in [s(4096), wide.clone()] {
        c.patch_json(
            &path,
            &json!({"status": "running", "status_message": ok}),
            &[],
            StatusCode::OK,
        )
        .await;
    }
    for bad in [s(4097), format!("{wide}x"), "esc\u{1b}[2J".into()] {
        patch_fails_on(
            c,
            &path,
            &json!({"status": "running", "status_message": bad}),
            "status_message",
        )
        .await;
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn every_other_string_of_a_create_is_bounded() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    for (field, max) in [
        ("user", 256),
        ("region", 256),
        ("zone", 256),
        ("target_link", 2048),
    ] {
        c.create(&create_with(&p, field, json!(s(max)))).await;
        create_fails_on(c, &create_with(&p, field, json!(s(max + 1))), field).await;
        create_fails_on(c, &create_with(&p, field, json!("a\u{1}")), field).await;
    }
    // A change's name is a label; its string values are free text.
    let key = s(256);
    c.create(&with_changes(&p, json!({ &key: {"from": 1, "to": 2} })))
        .await;
    let key = s(257);
    create_fails_on(
        c,
        &with_changes(&p, json!({ &key: {"from": 1, "to": 2} })),
        &format!("details.changes.{key}"),
    )
    .await;
    create_fails_on(
        c,
        &with_changes(&p, json!({ "": {"from": 1, "to": 2} })),
        "details.changes",
    )
    .await;
    c.create(&with_changes(
        &p,
        json!({"name": {"from": s(4096), "to": s(4096)}}),
    ))
    .await;
    create_fails_on(
        c,
        &with_changes(&p, json!({"name": {"from": "a", "to": s(4097)}})),
        "details.changes.name.to",
    )
    .await;
    create_fails_on(
        c,
        &with_changes(&p, json!({"name": {"from": s(4097), "to": "a"}})),
        "details.changes.name.from",
    )
    .await;
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn every_other_string_of_a_patch_is_bounded() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let failed = |item: Value, extra: Value| {
        let mut b = json!({"status": "failed", "error": {"errors": [item]}});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let warned = |item: Value| json!({"status": "running", "warnings": [item]});
    let cases = [
        (
            failed(
                json!({"code": s(256), "message": s(4096), "location": s(256)}),
                json!({"http_error_message": s(256)}),
            ),
            vec![
                (
                    failed(json!({"code": s(257), "message": "m"}), json!({})),
                    "error.errors[0].code",
                ),
                (
                    failed(json!({"code": "", "message": "m"}), json!({})),
                    "error.errors[0].code",
                ),
                (
                    failed(json!({"code": "c", "message": s(4097)}), json!({})),
                    "error.errors[0].message",
                ),
                (
                    failed(
                        json!({"code": "c", "message": "m", "location": s(257)}),
                        json!({}),
                    ),
                    "error.errors[0].location",
                ),
                (
                    failed(
                        json!({"code": "c", "message": "m"}),
                        json!({"http_error_message": s(257)}),
                    ),
                    "http_error_message",
                ),
            ],
        ),
        (
            warned(
                json!({"code": s(256), "message": s(4096), "data": [{"key": s(256), "value": s(4096)}]}),
            ),
            vec![
                (
                    warned(json!({"code": s(257), "message": "m"})),
                    "warnings[0].code",
                ),
                (
                    warned(json!({"code": "c", "message": s(4097)})),
                    "warnings[0].message",
                ),
                (
                    warned(
                        json!({"code": "c", "message": "m", "data": [{"key": s(257), "value": "v"}]}),
                    ),
                    "warnings[0].data[0].key",
                ),
                (
                    warned(
                        json!({"code": "c", "message": "m", "data": [{"key": "k", "value": s(4097)}]}),
                    ),
                    "warnings[0].data[0].value",
                ),
            ],
        ),
    ];
    for (ok, bad) in cases {
        let path = fresh(c, &p).await;
        for (body, field) in bad {
            patch_fails_on(c, &path, &body, field).await;
        }
        c.patch_json(&path, &ok, &[], StatusCode::OK).await;
    }
    w.assert_unchanged(c).await;
}

// ---------------------------------------------------------------------------------------
// Collections
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn api_key_bodies_are_bounded() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let key = |name: Value, role: Value, projects: Value| json!({"name": name, "role": role, "projects": projects});
    let projects = |n: usize| -> Value { (0..n).map(|i| json!(format!("p{i}"))).collect() };
    for ok in [
        key(json!(s(128)), json!("reader"), json!(["*"])),
        key(json!("k"), json!("producer"), projects(100)),
        key(
            json!("k"),
            json!("admin"),
            json!([format!("Az09._-{}", "p".repeat(121))]),
        ),
    ] {
        c.post_resp("/v1/api_keys", &ok, StatusCode::CREATED).await;
    }
    for (bad, field) in [
        (key(json!(s(129)), json!("reader"), json!(["*"])), "name"),
        (key(json!(""), json!("reader"), json!(["*"])), "name"),
        (key(json!("a\u{7}"), json!("reader"), json!(["*"])), "name"),
        (key(json!(5), json!("reader"), json!(["*"])), "name"),
        (key(json!("k"), json!("root"), json!(["*"])), "role"),
        (key(json!("k"), json!(null), json!(["*"])), "role"),
        (key(json!("k"), json!("reader"), projects(101)), "projects"),
        (key(json!("k"), json!("reader"), json!([])), "projects"),
        (
            key(json!("k"), json!("reader"), json!(["*", "p"])),
            "projects",
        ),
        (key(json!("k"), json!("reader"), json!("*")), "projects"),
        (
            key(json!("k"), json!("reader"), json!(["a b"])),
            "projects[0]",
        ),
        (
            key(json!("k"), json!("reader"), json!(["ok", "p".repeat(129)])),
            "projects[1]",
        ),
    ] {
        c.post_resp("/v1/api_keys", &bad, StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some(field));
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn changes_hold_at_most_256_entries() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let changes = |n: usize| {
        let map: Map<String, Value> = (0..n)
            .map(|i| (format!("f{i:03}"), json!({"from": i, "to": i + 1})))
            .collect();
        Value::Object(map)
    };
    let op = c.create(&with_changes(&p, changes(256))).await;
    assert_eq!(op["details"]["changes"].as_object().unwrap().len(), 256);
    create_fails_on(c, &with_changes(&p, changes(257)), "details.changes").await;
    create_fails_on(c, &with_changes(&p, changes(10_000)), "details.changes").await;
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn an_array_value_holds_at_most_1000_items() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let items = |n: usize| Value::Array((0..n).map(|i| json!(format!("t{i}"))).collect());
    let op = c
        .create(&with_changes(
            &p,
            json!({"tags": {"from": items(1000), "to": items(1000)}}),
        ))
        .await;
    assert_eq!(
        op["details"]["changes"]["tags"]["to"]
            .as_array()
            .unwrap()
            .len(),
        1000
    );
    create_fails_on(
        c,
        &with_changes(&p, json!({"tags": {"from": [], "to": items(1001)}})),
        "details.changes.tags.to",
    )
    .await;
    create_fails_on(
        c,
        &with_changes(&p, json!({"tags": {"from": items(1001), "to": []}})),
        "details.changes.tags.from",
    )
    .await;
    let mut long_item = items(10);
    long_item[5] = json!(s(4097));
    create_fails_on(
        c,
        &with_changes(&p, json!({"tags": {"from": [], "to": long_item}})),
        "details.changes.tags.to[5]",
    )
    .await;
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn a_patch_carries_at_most_100_warnings_and_an_operation_1000() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let path = fresh(c, &p).await;
    patch_fails_on(
        c,
        &path,
        &json!({"status": "running", "warnings": warnings(101)}),
        "warnings",
    )
    .await;
    let data = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
            .collect()
    };
    patch_fails_on(
        c,
        &path,
        &json!({"status": "running", "warnings": [{"code": "W", "message": "m", "data": data(101)}]}),
        "warnings[0].data",
    )
    .await;
    c.patch_json(
        &path,
        &json!({"status": "running", "warnings": [{"code": "W", "message": "m", "data": data(100)}]}),
        &[],
        StatusCode::OK,
    )
    .await;
    // 1 + 9 × 100 + 99 = 1000 warnings fill the operation; the next one is refused.
    for _ in 0..9 {
        c.patch_json(
            &path,
            &json!({"warnings": warnings(100)}),
            &[],
            StatusCode::OK,
        )
        .await;
    }
    let op = c
        .patch_json(
            &path,
            &json!({"warnings": warnings(99)}),
            &[],
            StatusCode::OK,
        )
        .await;
    assert_eq!(op["warnings"].as_array().unwrap().len(), 1000);
    patch_fails_on(c, &path, &json!({"warnings": warnings(1)}), "warnings").await;
    let op = c.get(&path, StatusCode::OK).await;
    assert_eq!(op["warnings"].as_array().unwrap().len(), 1000);
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn a_failure_carries_1_to_100_errors() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let path = fresh(c, &p).await;
    patch_fails_on(c, &path, &failed_with_errors(101), "error.errors").await;
    patch_fails_on(c, &path, &failed_with_errors(0), "error.errors").await;
    let op = c
        .patch_json(&path, &failed_with_errors(100), &[], StatusCode::OK)
        .await;
    assert_eq!(op["error"]["errors"].as_array().unwrap().len(), 100);
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn http_error_status_code_is_400_to_599() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let with_code = |code: Value| {
        let mut b = failed_with_errors(1);
        b["http_error_status_code"] = code;
        b
    };
    let path = fresh(c, &p).await;
    for bad in [
        json!(399),
        json!(600),
        json!(0),
        json!(-1),
        json!(65_936),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(500.5),
        json!("500"),
        json!(true),
    ] {
        patch_fails_on(c, &path, &with_code(bad), "http_error_status_code").await;
    }
    for ok in [400, 599] {
        let path = fresh(c, &p).await;
        let op = c
            .patch_json(&path, &with_code(json!(ok)), &[], StatusCode::OK)
            .await;
        assert_eq!(op["http_error_status_code"], ok);
    }
    w.assert_unchanged(c).await;
}

// ---------------------------------------------------------------------------------------
// Strict JSON
// ---------------------------------------------------------------------------------------

/// Sends `raw` to `path` with `method`, expecting a 400; returns the field it names.
async fn field_of_400(c: &TestClient, method: Method, path: &str, raw: &str) -> String {
    let body = send_raw(c, method, path, raw.to_owned(), StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", None);
    body["field"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn duplicate_keys_are_400_naming_the_field() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let create = |rest: &str| {
        format!(
            r#"{{"project_id": "{p}", "kind": "vm", "type": "create", "resource_id": "r"{rest}}}"#
        )
    };
    let cases = [
        (
            format!(
                r#"{{"project_id": "{p}", "project_id": "{p}", "kind": "vm", "type": "create", "resource_id": "r"}}"#
            ),
            "project_id",
        ),
        (
            create(r#", "description": "a", "description": "a""#),
            "description",
        ),
        (
            create(r#", "request_id": "a", "request_id": "b""#),
            "request_id",
        ),
        // A key repeated inside the `changes` map (serde_json alone keeps the last one).
        (
            create(
                r#", "details": {"changes": {"cpu": {"from": 1, "to": 2}, "cpu": {"from": 1, "to": 2}}}"#,
            ),
            "details.changes.cpu",
        ),
        (
            create(
                r#", "details": {"changes": {"cpu": {"from": 1, "to": 2}, "mem": {"from": 1, "to": 2}, "cpu": {"from": 3, "to": 4}}}"#,
            ),
            "details.changes.cpu",
        ),
    ];
    for (raw, field) in cases {
        let named = field_of_400(c, Method::POST, "/v1/operations", &raw).await;
        assert!(
            named == field || (field.starts_with("details.changes") && named == "details.changes"),
            "{raw}: expected field {field}, got {named}"
        );
    }
    let path = fresh(c, &p).await;
    for (raw, field) in [
        (r#"{"status": "running", "status": "done"}"#, "status"),
        (r#"{"progress": 1, "progress": 2}"#, "progress"),
    ] {
        assert_eq!(
            field_of_400(c, Method::PATCH, &path, raw).await,
            field,
            "{raw}"
        );
    }
    // Nothing was applied.
    let op = c.get(&path, StatusCode::OK).await;
    assert_eq!(op["status"], "pending");
    assert_eq!(op["version"], 1);
    let list = c.list(&[("project_id", &p)], StatusCode::OK).await.json();
    assert_eq!(list["pagination"]["total_count"], 1, "{list}");
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn duplicate_keys_in_nested_objects_name_the_field() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let create = |rest: &str| {
        format!(
            r#"{{"project_id": "{p}", "kind": "vm", "type": "create", "resource_id": "r"{rest}}}"#
        )
    };
    for (raw, field) in [
        (
            create(r#", "details": {"changes": {}, "changes": {}}"#),
            "details.changes",
        ),
        (
            create(r#", "details": {"changes": {"cpu": {"from": 1, "to": 2, "to": 3}}}"#),
            "details.changes.cpu.to",
        ),
    ] {
        assert_eq!(
            field_of_400(c, Method::POST, "/v1/operations", &raw).await,
            field,
            "{raw}"
        );
    }
    let path = fresh(c, &p).await;
    let err = r#"{"code": "E", "message": "m"}"#;
    for (raw, field) in [
        (
            format!(r#"{{"status": "failed", "error": {{"errors": [{err}], "errors": [{err}]}}}}"#),
            "error.errors",
        ),
        (
            r#"{"status": "failed", "error": {"errors": [{"code": "E", "code": "F", "message": "m"}]}}"#.to_owned(),
            "error.errors[0].code",
        ),
        (
            r#"{"warnings": [{"code": "W", "message": "m", "message": "n"}]}"#.to_owned(),
            "warnings[0].message",
        ),
        (
            r#"{"warnings": [{"code": "W", "message": "m", "data": [{"key": "k", "key": "l", "value": "v"}]}]}"#.to_owned(),
            "warnings[0].data[0].key",
        ),
    ] {
        assert_eq!(field_of_400(c, Method::PATCH, &path, &raw).await, field, "{raw}");
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn unknown_fields_are_400_naming_the_field() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let cases = [
        (create_with(&p, "bogus", json!(1)), "bogus"),
        (create_with(&p, "Project_Id", json!(p)), "Project_Id"),
        (create_with(&p, "id", json!(uuid::Uuid::now_v7())), "id"),
        (create_with(&p, "status", json!("done")), "status"),
        (create_with(&p, "version", json!(7)), "version"),
        (
            create_with(&p, "details", json!({"changes": {}, "extra": {}})),
            "details.extra",
        ),
        (
            with_changes(&p, json!({"cpu": {"from": 1, "to": 2, "by": "me"}})),
            "details.changes.cpu.by",
        ),
    ];
    for (body, field) in cases {
        create_fails_on(c, &body, field).await;
    }
    let path = fresh(c, &p).await;
    let cases = [
        (json!({"status": "running", "bogus": 1}), "bogus"),
        (json!({"status": "running", "version": 9}), "version"),
        (
            json!({"status": "failed", "error": {"errors": [{"code": "E", "message": "m"}], "extra": 1}}),
            "error.extra",
        ),
        (
            json!({"status": "failed", "error": {"errors": [{"code": "E", "message": "m", "extra": 1}]}}),
            "error.errors[0].extra",
        ),
        (
            json!({"warnings": [{"code": "W", "message": "m", "data": [{"key": "k", "value": "v", "x": 1}]}]}),
            "warnings[0].data[0].x",
        ),
    ];
    for (body, field) in cases {
        patch_fails_on(c, &path, &body, field).await;
    }
    c.post_resp(
        "/v1/api_keys",
        &json!({"name": "k", "role": "reader", "projects": ["*"], "scope": "all"}),
        StatusCode::BAD_REQUEST,
    )
    .await
    .assert_error("invalid_argument", Some("scope"));
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn wrong_types_and_nulls_are_400_naming_the_field() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let cases = [
        (create_with(&p, "project_id", json!(5)), "project_id"),
        (create_with(&p, "project_id", json!(null)), "project_id"),
        (create_with(&p, "project_id", json!([p])), "project_id"),
        (create_with(&p, "kind", json!(1)), "kind"),
        (create_with(&p, "kind", json!("spaceship")), "kind"),
        (create_with(&p, "kind", json!("VM")), "kind"),
        (create_with(&p, "type", json!(null)), "type"),
        (create_with(&p, "resource_id", json!({})), "resource_id"),
        (create_with(&p, "description", json!(5)), "description"),
        (create_with(&p, "request_id", json!(true)), "request_id"),
        (create_with(&p, "details", json!("x")), "details"),
        (
            create_with(&p, "details", json!({"changes": []})),
            "details.changes",
        ),
        (
            create_with(&p, "details", json!({"changes": null})),
            "details.changes",
        ),
        (
            create_with(&p, "details", json!({"changes": "x"})),
            "details.changes",
        ),
        (
            with_changes(&p, json!({"cpu": null})),
            "details.changes.cpu",
        ),
        (with_changes(&p, json!({"cpu": 5})), "details.changes.cpu"),
        (
            with_changes(&p, json!({"cpu": {"from": 1}})),
            "details.changes.cpu.to",
        ),
        (
            with_changes(&p, json!({"cpu": {"from": null, "to": 1}})),
            "details.changes.cpu.from",
        ),
        (
            with_changes(&p, json!({"cpu": {"from": 1, "to": {}}})),
            "details.changes.cpu.to",
        ),
        (
            with_changes(&p, json!({"cpu": {"from": 1, "to": [1]}})),
            "details.changes.cpu.to",
        ),
        (
            with_changes(&p, json!({"cpu": {"from": 1, "to": [[]]}})),
            "details.changes.cpu.to",
        ),
    ];
    for (body, field) in cases {
        create_fails_on(c, &body, field).await;
    }
    let path = fresh(c, &p).await;
    let cases = [
        (json!({"status": 1}), "status"),
        (json!({"status": "RUNNING"}), "status"),
        (json!({"progress": 1.5}), "progress"),
        (json!({"progress": "50"}), "progress"),
        (json!({"progress": 1e300}), "progress"),
        (json!({"status_message": ["a"]}), "status_message"),
        (json!({"warnings": {}}), "warnings"),
        (json!({"warnings": "w"}), "warnings"),
        (json!({"warnings": [null]}), "warnings[0]"),
        (
            json!({"warnings": [{"code": "W", "message": "m", "data": "x"}]}),
            "warnings[0].data",
        ),
        (
            json!({"warnings": [{"code": "W", "message": "m", "data": [null]}]}),
            "warnings[0].data[0]",
        ),
        (json!({"status": "failed", "error": []}), "error"),
        (json!({"status": "failed", "error": null}), "error"),
        (
            json!({"status": "failed", "error": {"errors": {}}}),
            "error.errors",
        ),
        (
            json!({"status": "failed", "error": {"errors": null}}),
            "error.errors",
        ),
        (
            json!({"status": "failed", "error": {"errors": [null]}}),
            "error.errors[0]",
        ),
        (
            json!({"status": "failed", "error": {"errors": [{"code": 1, "message": "m"}]}}),
            "error.errors[0].code",
        ),
        (json!({"expected_version": -1}), "expected_version"),
        (json!({"expected_version": "1"}), "expected_version"),
    ];
    for (body, field) in cases {
        patch_fails_on(c, &path, &body, field).await;
    }
    let op = c.get(&path, StatusCode::OK).await;
    assert_eq!(op["version"], 1, "{op}");
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn arrays_in_place_of_objects_are_refused() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    for (body, field) in [
        (create_with(&p, "details", json!([])), "details"),
        (create_with(&p, "details", json!([{}])), "details"),
        (
            with_changes(&p, json!({"cpu": [1, 2]})),
            "details.changes.cpu",
        ),
    ] {
        create_fails_on(c, &body, field).await;
    }
    let list = c.list(&[("project_id", &p)], StatusCode::OK).await.json();
    assert_eq!(list["pagination"]["total_count"], 0, "{list}");
    let path = fresh(c, &p).await;
    for (body, field) in [
        (
            json!({"status": "running", "warnings": [["W", "m"]]}),
            "warnings[0]",
        ),
        (
            json!({"status": "running", "warnings": [{"code": "W", "message": "m", "data": [["k", "v"]]}]}),
            "warnings[0].data[0]",
        ),
        (
            json!({"status": "failed", "error": [[["E", "m"]]]}),
            "error",
        ),
        (
            json!({"status": "failed", "error": {"errors": [["E", "m"]]}}),
            "error.errors[0]",
        ),
    ] {
        patch_fails_on(c, &path, &body, field).await;
    }
    let op = c.get(&path, StatusCode::OK).await;
    assert_eq!(op["version"], 1, "{op}");
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn a_body_that_is_not_one_json_object_is_400_body() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let valid = serde_json::to_string(&new_op(&p)).unwrap();
    let mut cases: Vec<Vec<u8>> = [
        "",
        "   ",
        "null",
        "42",
        "true",
        "\"s\"",
        "[]",
        "[{}]",
        "{",
        "}",
        "{\"project_id\"}",
        "{'project_id': 'p'}",
        "{\"project_id\": \"p\",}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    cases.push(format!("[{valid}]").into_bytes());
    cases.push(format!("{valid}{valid}").into_bytes());
    cases.push(format!("{valid} x").into_bytes());
    cases.push(format!("\u{feff}{valid}").into_bytes());
    cases.push(format!("{valid}\u{0}").into_bytes());
    cases.push("[".repeat(100_000).into_bytes());
    for raw in cases {
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(60)]).into_owned();
        let body = send_raw(
            c,
            Method::POST,
            "/v1/operations",
            raw,
            StatusCode::BAD_REQUEST,
        )
        .await
        .assert_error("invalid_argument", None);
        assert_eq!(body["field"], "body", "{shown:?}: {body}");
    }
    let path = op_path(&w.ops[0]);
    for raw in ["", "null", "[]", "\"running\""] {
        send_raw(c, Method::PATCH, &path, raw, StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some("body"));
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn deeply_nested_json_is_400_not_a_crash() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    let depth = 50_000;
    let deep_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let prefix =
        format!(r#"{{"project_id": "{p}", "kind": "vm", "type": "create", "resource_id": "r", "#);
    for (raw, what) in [
        (
            format!(
                r#"{prefix}"details": {{"changes": {{"cpu": {{"from": 1, "to": {deep_array}}}}}}}}}"#
            ),
            "a diff value",
        ),
        (
            format!(
                r#"{prefix}"details": {{"changes": {{"cpu": {{"from": 1, "to": {deep_object}}}}}}}}}"#
            ),
            "a diff value",
        ),
        (
            format!(r#"{prefix}"description": {deep_array}}}"#),
            "description",
        ),
        (
            format!(r#"{prefix}"bogus": {deep_object}}}"#),
            "an unknown field",
        ),
        (
            format!("{}{}", "{\"details\":".repeat(depth), "}".repeat(depth)),
            "the body",
        ),
    ] {
        assert!(raw.len() < MAX_BODY);
        let resp = send_raw(
            c,
            Method::POST,
            "/v1/operations",
            raw,
            StatusCode::BAD_REQUEST,
        )
        .await;
        let body = resp.assert_error("invalid_argument", None);
        assert!(body["field"].is_string(), "{what}: {body}");
    }
    w.assert_unchanged(c).await;
}

// ---------------------------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn repeated_query_parameters_are_400_naming_them() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = w.project().to_owned();
    for q in [
        format!("project_id={p}&limit=1&limit=1"),
        format!("project_id={p}&project_id={p}"),
        format!("project_id={p}&status=done&kind=vm&status=done"),
    ] {
        let field = if q.contains("limit") {
            "limit"
        } else if q.contains("status") {
            "status"
        } else {
            "project_id"
        };
        let body = get_raw_query(c, "/v1/operations", &q, StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some(field));
        assert!(body["message"].as_str().unwrap().contains("once"), "{body}");
    }
    let list = google_list(&p);
    let get = format!("{list}/operation-{}", w.ids()[0]);
    for (path, q, field) in [
        (&list, "maxResults=1&maxResults=1", "maxResults"),
        (&list, "alt=json&alt=json", "alt"),
        (&list, "filter=name%3Da&filter=name%3Db", "filter"),
        (&get, "prettyPrint=false&prettyPrint=true", "prettyPrint"),
        (&get, "fields=name&fields=id", "fields"),
    ] {
        let resp = get_raw_query(c, path, q, StatusCode::BAD_REQUEST).await;
        google_error(&resp, StatusCode::BAD_REQUEST, Some(field));
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn unknown_query_parameters_are_400_naming_them_and_the_accepted_ones() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = w.project().to_owned();
    for (q, field) in [
        (format!("project_id={p}&page=2"), "page"),
        (format!("project_id={p}&Limit=5"), "Limit"),
        (format!("project_id={p}&%00=1"), "\u{0}"),
        (format!("project_id={p}&=1"), ""),
        // Google's standard parameters belong to the Google paths only.
        (format!("project_id={p}&alt=json"), "alt"),
        (format!("project_id={p}&key=abc"), "key"),
        (format!("project_id={p}&maxResults=5"), "maxResults"),
    ] {
        let body = get_raw_query(c, "/v1/operations", &q, StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some(field));
        let message = body["message"].as_str().unwrap();
        for accepted in ["project_id", "limit", "cursor", "sort", "created_at_min"] {
            assert!(message.contains(accepted), "{message}");
        }
    }
    let list = google_list(&p);
    let resp = get_raw_query(c, &list, "pageSize=5", StatusCode::BAD_REQUEST).await;
    let body = google_error(&resp, StatusCode::BAD_REQUEST, Some("pageSize"));
    let message = body["error"]["message"].as_str().unwrap();
    for accepted in [
        "filter",
        "maxResults",
        "orderBy",
        "pageToken",
        "fields",
        "alt",
    ] {
        assert!(message.contains(accepted), "{message}");
    }
    // operations.get takes only the standard parameters.
    let get = format!("{list}/operation-{}", w.ids()[0]);
    let resp = get_raw_query(c, &get, "maxResults=5", StatusCode::BAD_REQUEST).await;
    google_error(&resp, StatusCode::BAD_REQUEST, Some("maxResults"));
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn single_operation_paths_refuse_unknown_query_parameters() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let path = op_path(&w.ops[0]);
    for target in [path.clone(), format!("{path}/events")] {
        get_raw_query(c, &target, "bogus=1", StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some("bogus"));
    }
    let request = c
        .request(Method::PATCH, &format!("{path}?force=true"))
        .json(&json!({"status_message": "x"}));
    c.send(request, StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some("force"));
    let request = c
        .request(Method::POST, "/v1/operations?dry_run=true")
        .json(&new_op(&unique_project()));
    c.send(request, StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some("dry_run"));
    get_raw_query(c, "/v1/api_keys", "role=admin", StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some("role"));
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn google_paths_accept_the_standard_parameters_and_refuse_alt_media() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = w.project().to_owned();
    let reader = TestClient::mint_key(&server.store, Role::Reader, &[&p]).await;
    // The key travels in the query only, as Google's clients may send it.
    let anonymous = c.with_key(None);
    let list = google_list(&p);
    let standard = format!(
        "alt=json&prettyPrint=false&fields=operations(name)&quotaUser=x&$.xgafv=2&key={}",
        enc(&reader)
    );
    let resp = get_raw_query(&anonymous, &list, &standard, StatusCode::OK).await;
    assert!(
        !resp.text.contains('\n'),
        "prettyPrint=false: {}",
        resp.text
    );
    let body = resp.json();
    let ops = body["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4, "{body}");
    for op in ops {
        let keys: Vec<&String> = op.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name"], "{body}");
    }
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");

    let get = format!("{list}/operation-{}", w.ids()[0]);
    let standard = format!(
        "alt=json&prettyPrint=false&fields=name,status&quotaUser=x&$.xgafv=2&key={}",
        enc(&reader)
    );
    let body = get_raw_query(&anonymous, &get, &standard, StatusCode::OK)
        .await
        .json();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_eq!(body["name"], format!("operation-{}", w.ids()[0]));

    for alt in ["media", "proto", "JSON", ""] {
        let q = format!("alt={alt}&key={}", enc(&reader));
        for path in [&list, &get] {
            let resp = get_raw_query(&anonymous, path, &q, StatusCode::BAD_REQUEST).await;
            google_error(&resp, StatusCode::BAD_REQUEST, Some("alt"));
        }
    }
    let resp = get_raw_query(
        &anonymous,
        &list,
        &format!("callback=cb&key={}", enc(&reader)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    google_error(&resp, StatusCode::BAD_REQUEST, Some("callback"));
    let resp = get_raw_query(
        &anonymous,
        &list,
        &format!("prettyPrint=maybe&key={}", enc(&reader)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    google_error(&resp, StatusCode::BAD_REQUEST, Some("prettyPrint"));
    // `key=` is not a credential on the Nirvana paths.
    let body = get_raw_query(
        &anonymous,
        "/v1/operations",
        &format!("project_id={p}&key={}", enc(&reader)),
        StatusCode::UNAUTHORIZED,
    )
    .await
    .assert_error("unauthenticated", None);
    assert!(body["message"].is_string());
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn a_query_string_is_at_most_16_kib() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = w.project().to_owned();
    // Empty pairs (`&&&`) are legal padding, so the length alone is tested.
    let padded = |prefix: &str, len: usize| {
        let mut q = prefix.to_owned();
        q.push_str(&"&".repeat(len - prefix.len()));
        assert_eq!(q.len(), len);
        q
    };
    let nirvana = format!("project_id={p}");
    get_raw_query(
        c,
        "/v1/operations",
        &padded(&nirvana, MAX_QUERY),
        StatusCode::OK,
    )
    .await;
    get_raw_query(
        c,
        "/v1/operations",
        &padded(&nirvana, MAX_QUERY + 1),
        StatusCode::BAD_REQUEST,
    )
    .await
    .assert_error("invalid_argument", Some("query"));

    let list = google_list(&p);
    get_raw_query(c, &list, &padded("alt=json", MAX_QUERY), StatusCode::OK).await;
    let resp = get_raw_query(
        c,
        &list,
        &padded("alt=json", MAX_QUERY + 1),
        StatusCode::BAD_REQUEST,
    )
    .await;
    google_error(&resp, StatusCode::BAD_REQUEST, Some("query"));
    let get = format!("{list}/operation-{}", w.ids()[0]);
    let resp = get_raw_query(
        c,
        &get,
        &padded("alt=json", MAX_QUERY + 1),
        StatusCode::BAD_REQUEST,
    )
    .await;
    google_error(&resp, StatusCode::BAD_REQUEST, Some("query"));

    // Far beyond the limit (beyond what a `Uri` can hold, so over a raw socket): a 4xx
    // from whichever layer notices first, never a 5xx or a dropped connection.
    let key = TestClient::mint_key(&server.store, Role::Admin, &["*"]).await;
    for len in [64 * 1024, 1024 * 1024] {
        let mut conn = raw::Conn::open(c).await;
        let head = format!(
            "GET /v1/operations?{} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\r\n",
            padded(&nirvana, len)
        );
        let writing = conn.write_in_background(head.into_bytes());
        let r = conn.response_within(Duration::from_secs(10)).await;
        assert!(
            (400..500).contains(&r.status),
            "a {len}-byte query answered {}",
            r.status
        );
        writing.abort();
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn a_google_filter_is_at_most_4096_bytes() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let list = google_list(w.project());
    let at_limit = format!("name = \"{}\"", "x".repeat(4096 - 9));
    assert_eq!(at_limit.len(), 4096);
    let body = get_raw_query(
        c,
        &list,
        &format!("filter={}", enc(&at_limit)),
        StatusCode::OK,
    )
    .await
    .json();
    let matched = body
        .get("operations")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    assert_eq!(matched, 0, "{body}");
    let over = format!("name = \"{}\"", "x".repeat(4096 - 8));
    let resp = get_raw_query(
        c,
        &list,
        &format!("filter={}", enc(&over)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    google_error(&resp, StatusCode::BAD_REQUEST, Some("filter"));
    // Two-byte characters: byte 4097 is what counts, not the 2049th character.
    let wide = format!("name = \"{}\"", "é".repeat(2044));
    assert_eq!(wide.len(), 4097);
    let resp = get_raw_query(
        c,
        &list,
        &format!("filter={}", enc(&wide)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    google_error(&resp, StatusCode::BAD_REQUEST, Some("filter"));
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn absurdly_nested_filters_are_400_not_a_crash() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let list = google_list(w.project());
    let nest = |n: usize| format!("{}zone:*{}", "(".repeat(n), ")".repeat(n));
    get_raw_query(c, &list, &format!("filter={}", nest(32)), StatusCode::OK).await;
    let resp = get_raw_query(
        c,
        &list,
        &format!("filter={}", nest(33)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    google_error(&resp, StatusCode::BAD_REQUEST, Some("filter"));
    for filter in [
        "(".repeat(10_000),
        "(".repeat(4000),
        ")".repeat(4000),
        "-(".repeat(2000),
        "NOT ".repeat(1000),
        format!("{}name=a", "NOT (".repeat(800)),
        "name=a AND ".repeat(370),
        "name=a OR ".repeat(400),
        format!("name eq '{}'", "(".repeat(4000)),
    ] {
        // Raw: parentheses need no escaping in a query string, so 10,000 of them stay
        // under the 16 KiB query limit and reach the filter parser.
        let q = format!(
            "filter={}",
            filter
                .replace(' ', "%20")
                .replace('|', "%7C")
                .replace('\'', "%27")
        );
        let resp = get_raw_query(c, &list, &q, StatusCode::BAD_REQUEST).await;
        google_error(&resp, StatusCode::BAD_REQUEST, None);
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn absurd_fields_masks_are_400_not_a_crash() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let list = google_list(w.project());
    let get = format!("{list}/operation-{}", w.ids()[0]);
    for path in [&list, &get] {
        for mask in [
            "a(".repeat(1000),
            format!("{}a{}", "a(".repeat(1000), ")".repeat(1000)),
            format!("{}a{}", "a(".repeat(17), ")".repeat(17)),
            "(".repeat(5000),
            ")".repeat(5000),
            ",".repeat(5000),
            "a,".repeat(5000),
            "/".repeat(5000),
        ] {
            let resp =
                get_raw_query(c, path, &format!("fields={mask}"), StatusCode::BAD_REQUEST).await;
            google_error(&resp, StatusCode::BAD_REQUEST, Some("fields"));
        }
        let mask = format!("{}a{}", "a(".repeat(16), ")".repeat(16));
        get_raw_query(c, path, &format!("fields={mask}"), StatusCode::OK).await;
    }
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn a_fields_path_deeper_than_the_nesting_limit_is_400() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let list = google_list(w.project());
    // `a/b/c` selects a nested field just as `a(b(c))` does.
    get_raw_query(
        c,
        &list,
        "fields=operations/error/errors/code",
        StatusCode::OK,
    )
    .await;
    let mask = vec!["a"; 1000].join("/");
    let resp = get_raw_query(c, &list, &format!("fields={mask}"), StatusCode::BAD_REQUEST).await;
    google_error(&resp, StatusCode::BAD_REQUEST, Some("fields"));
    w.assert_unchanged(c).await;
}

#[tokio::test]
async fn a_fields_path_thousands_of_segments_long_does_not_crash_the_server() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let list = google_list(w.project());
    // 8000 segments: 16 KB, just under the query limit. In a debug build about 3000 are
    // enough; `Selection::merge` recurses once per segment and the nested `Selection`s it
    // builds are dropped recursively too.
    let mask = vec!["a"; 8000].join("/");
    let url = format!("{}{list}?fields={mask}", origin(c));
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(TestClient::mint_key(&server.store, Role::Reader, &["*"]).await)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("a deep fields path dropped the connection: {e}"));
    assert!(
        resp.status() == StatusCode::OK || resp.status() == StatusCode::BAD_REQUEST,
        "{}",
        resp.status()
    );
    w.assert_unchanged(c).await;
}

// ---------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn hostile_headers_get_a_4xx_not_a_5xx_or_a_dropped_connection() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let anonymous = c.with_key(None);
    let path = op_path(&w.ops[0]);
    let cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        (
            "authorization",
            b"Bearer ".to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "authorization",
            b"Bearer  ".to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "authorization",
            b"Basic YWRtaW46YWRtaW4=".to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "authorization",
            format!("Bearer {}", s(10_000)).into_bytes(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "authorization",
            [b"Bearer ".as_slice(), &[0xff, 0xfe, 0x80]].concat(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "authorization",
            b"Bearer a\tb".to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (name, value, expected) in cases {
        let request = anonymous.request(Method::GET, &path).header(
            name,
            reqwest::header::HeaderValue::from_bytes(&value).unwrap(),
        );
        anonymous
            .send(request, expected)
            .await
            .assert_error("unauthenticated", None);
    }
    // Junk If-Match and request ids.
    for if_match in [
        "W/\"1\"",
        "\"-1\"",
        "\"99999999999999999999999\"",
        "\"1\", \"2\"",
        "é",
    ] {
        let request = c
            .request(Method::PATCH, &path)
            .header(reqwest::header::IF_MATCH, if_match.as_bytes())
            .json(&json!({"status_message": "x"}));
        c.send(request, StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some("If-Match"));
    }
    for request_id in [s(129), "a b".into(), "é".into(), String::new()] {
        let request = c
            .request(Method::GET, &path)
            .header("x-request-id", request_id.as_bytes());
        let resp = c.send(request, StatusCode::OK).await;
        assert_ne!(resp.header("x-request-id"), request_id);
    }
    // Oversized headers are refused by the HTTP layer with a 4xx.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = c.url(&path, &[]);
    let huge = http.get(url.clone()).header("x-junk", s(1024 * 1024));
    let many = (0..500).fold(http.get(url), |r, i| r.header(format!("x-junk-{i}"), "v"));
    for request in [huge, many] {
        let resp = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("oversized headers dropped the connection: {e}"));
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    w.assert_unchanged(c).await;
}
