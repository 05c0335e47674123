//! Every documented error of the single-operation endpoints and of request bodies: the
//! status, the machine code, the field named, and `x-should-retry: false` (checked by
//! `Resp::assert_error` on every 4xx).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestClient, TestServer, new_op, op_path, unique_project};

const MISSING: &str = "/v1/operations/0190d6e4-8c3a-7000-8000-000000000000";

/// Posts a raw body (labelled JSON) expecting a 400; returns the error body.
async fn post_raw(c: &TestClient, body: impl Into<reqwest::Body>) -> Value {
    let request = c
        .request(Method::POST, "/v1/operations")
        .header("content-type", "application/json")
        .body(body);
    c.send(request, StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", None)
}

/// Creates `body` expecting a 400 that names `field`.
async fn create_fails_on(c: &TestClient, body: &Value, field: &str) -> Value {
    c.post_resp("/v1/operations", body, StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some(field))
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let server = TestServer::start().await;
    let c = &server.client;
    let body = c
        .get_resp(MISSING, StatusCode::NOT_FOUND)
        .await
        .assert_error("not_found", None);
    assert!(
        body["message"].as_str().unwrap().contains(&MISSING[15..]),
        "{body}"
    );

    let patch = json!({"status": "running"});
    c.patch_resp(MISSING, &patch, &[], StatusCode::NOT_FOUND)
        .await
        .assert_error("not_found", None);
    c.get_resp(&format!("{MISSING}/events"), StatusCode::NOT_FOUND)
        .await
        .assert_error("not_found", None);

    for path in [
        "/v1/operations/not-a-uuid",
        "/v1/operations/not-a-uuid/events",
    ] {
        c.get_resp(path, StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some("operation_id"));
    }
    c.patch_resp("/v1/operations/123", &patch, &[], StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some("operation_id"));
}

#[tokio::test]
async fn non_utf8_id_is_a_json_400() {
    let server = TestServer::start().await;
    server
        .client
        .get_resp("/v1/operations/%FF", StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some("operation_id"));
}

#[tokio::test]
async fn stale_versions_are_412_and_change_nothing() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let path = op_path(&op);
    let running = json!({"status": "running"});
    c.patch_resp(
        &path,
        &running,
        &[("if-match", "\"7\"")],
        StatusCode::PRECONDITION_FAILED,
    )
    .await
    .assert_error("precondition_failed", None);
    let body = json!({"status": "running", "expected_version": 2});
    c.patch_resp(&path, &body, &[], StatusCode::PRECONDITION_FAILED)
        .await
        .assert_error("precondition_failed", None);
    assert_eq!(c.get(&path, StatusCode::OK).await, op);
}

#[tokio::test]
async fn if_match_disagreeing_with_expected_version_or_malformed_is_400() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let path = op_path(&op);
    let body = json!({"status": "running", "expected_version": 1});
    c.patch_resp(
        &path,
        &body,
        &[("if-match", "\"2\"")],
        StatusCode::BAD_REQUEST,
    )
    .await
    .assert_error("invalid_argument", Some("expected_version"));
    c.patch_resp(
        &path,
        &body,
        &[("if-match", "\"one\"")],
        StatusCode::BAD_REQUEST,
    )
    .await
    .assert_error("invalid_argument", Some("If-Match"));
}

#[tokio::test]
async fn forbidden_transitions_are_409_not_retryable() {
    let server = TestServer::start().await;
    let c = &server.client;
    let project = unique_project();

    let done = c.create(&new_op(&project)).await;
    c.patch(&done, &json!({"status": "done"})).await;
    let resp = c
        .patch_resp(
            &op_path(&done),
            &json!({"status": "running"}),
            &[],
            StatusCode::CONFLICT,
        )
        .await;
    resp.assert_error("invalid_transition", Some("status"));
    assert_eq!(resp.header("x-should-retry"), "false");

    let failed = c.create(&new_op(&project)).await;
    let error = json!({"errors": [{"code": "E", "message": "broke"}]});
    c.patch(&failed, &json!({"status": "failed", "error": error}))
        .await;
    c.patch_resp(
        &op_path(&failed),
        &json!({"status": "done"}),
        &[],
        StatusCode::CONFLICT,
    )
    .await
    .assert_error("invalid_transition", Some("status"));

    // Only a running operation may be updated without a status change.
    let pending = c.create(&new_op(&project)).await;
    c.patch_resp(
        &op_path(&pending),
        &json!({"progress": 5}),
        &[],
        StatusCode::CONFLICT,
    )
    .await
    .assert_error("invalid_transition", Some("status"));
}

#[tokio::test]
async fn progress_never_decreases() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    c.patch(&op, &json!({"status": "running", "progress": 60}))
        .await;
    for body in [
        json!({"progress": 59}),
        json!({"status": "done", "progress": 10}),
    ] {
        c.patch_resp(&op_path(&op), &body, &[], StatusCode::CONFLICT)
            .await
            .assert_error("progress_decrease", Some("progress"));
    }
}

#[tokio::test]
async fn error_fields_go_with_failed_only() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let path = op_path(&op);
    let cases = [
        (json!({"status": "failed"}), "error"),
        (
            json!({"status": "failed", "error": {"errors": []}}),
            "error.errors",
        ),
        (
            json!({"status": "running", "error": {"errors": [{"code": "E", "message": "m"}]}}),
            "error",
        ),
        (
            json!({"status": "running", "http_error_status_code": 500}),
            "http_error_status_code",
        ),
        (
            json!({"status": "failed", "error": {"errors": [{"code": "E", "message": "m"}]},
                "http_error_status_code": 200}),
            "http_error_status_code",
        ),
    ];
    for (body, field) in cases {
        c.patch_resp(&path, &body, &[], StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some(field));
    }
}

#[tokio::test]
async fn request_id_reused_with_another_body_is_409_not_retryable() {
    let server = TestServer::start().await;
    let c = &server.client;
    let mut body = new_op(&unique_project());
    body["request_id"] = json!("once");
    let first = c.create(&body).await;
    body["resource_id"] = json!("vm-2");
    let resp = c
        .post_resp("/v1/operations", &body, StatusCode::CONFLICT)
        .await;
    resp.assert_error("idempotency_conflict", Some("request_id"));
    assert_eq!(resp.header("x-should-retry"), "false");
    assert_eq!(c.get(&op_path(&first), StatusCode::OK).await, first);
}

#[tokio::test]
async fn create_body_errors_name_the_field() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let with = |k: &str, v: Value| {
        let mut b = new_op(&p);
        b[k] = v;
        b
    };
    let diff = |to: Value| {
        with(
            "details",
            json!({"changes": {"size": {"from": "a", "to": to}}}),
        )
    };
    let cases = [
        (with("bogus", json!(1)), "bogus"),
        (
            with("details", json!({"changes": {}, "extra": 1})),
            "details.extra",
        ),
        (
            with(
                "details",
                json!({"changes": {"size": {"from": 1, "to": 2, "bogus": 3}}}),
            ),
            "details.changes.size.bogus",
        ),
        (with("resource_id", json!(5)), "resource_id"),
        (with("details", json!("big")), "details"),
        (diff(json!({"a": 1})), "details.changes.size.to"),
        (diff(Value::Null), "details.changes.size.to"),
        (diff(json!([1, 2])), "details.changes.size.to"),
        (diff(json!(["a", null])), "details.changes.size.to"),
        (with("project_id", json!("has space")), "project_id"),
        (with("project_id", json!("a/b")), "project_id"),
        (with("project_id", json!("x".repeat(129))), "project_id"),
        (with("resource_id", json!("vm 1")), "resource_id"),
        (with("kind", json!("tractor")), "kind"),
        (with("type", json!("explode")), "type"),
        (with("status", json!("running")), "status"),
        (with("description", json!("x".repeat(4097))), "description"),
    ];
    for (body, field) in cases {
        create_fails_on(c, &body, field).await;
    }
}

#[tokio::test]
async fn missing_required_field_is_named() {
    let server = TestServer::start().await;
    let mut body = new_op(&unique_project());
    body.as_object_mut().unwrap().remove("kind");
    create_fails_on(&server.client, &body, "kind").await;
}

#[tokio::test]
async fn duplicate_keys_are_refused() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let top = format!(
        r#"{{"project_id": "{p}", "project_id": "{p}", "kind": "vm", "type": "create", "resource_id": "r"}}"#
    );
    let body = post_raw(c, top).await;
    assert_eq!(body["field"], "project_id");

    let nested = format!(
        r#"{{"project_id": "{p}", "kind": "vm", "type": "create", "resource_id": "r",
            "details": {{"changes": {{"a": {{"from": 1, "from": 2, "to": 3}}}}}}}}"#
    );
    let body = post_raw(c, nested).await;
    assert!(
        body["field"]
            .as_str()
            .unwrap()
            .starts_with("details.changes.a"),
        "{body}"
    );
}

#[tokio::test]
async fn duplicate_keys_in_changes_are_refused() {
    let server = TestServer::start().await;
    let p = unique_project();
    let body = format!(
        r#"{{"project_id": "{p}", "kind": "vm", "type": "create", "resource_id": "r",
            "details": {{"changes": {{"a": {{"from": 1, "to": 2}}, "a": {{"from": 3, "to": 4}}}}}}}}"#
    );
    let body = post_raw(&server.client, body).await;
    assert_eq!(body["field"], "details.changes.a");
}

#[tokio::test]
async fn bodies_that_are_not_a_json_object() {
    let server = TestServer::start().await;
    let c = &server.client;
    for raw in [
        "",
        "{",
        "[1, 2]",
        "null",
        "\"s\"",
        "{\"project_id\": \"p\"} trailing",
    ] {
        let body = post_raw(c, raw).await;
        assert_eq!(body["field"], "body", "{raw:?}");
    }
    let request = c
        .request(Method::POST, "/v1/operations")
        .header("content-type", "text/plain")
        .body(serde_json::to_vec(&new_op(&unique_project())).unwrap());
    c.send(request, StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .await
        .assert_error("unsupported_media_type", None);
}

#[tokio::test]
async fn a_body_over_one_mib_is_413() {
    let server = TestServer::start().await;
    let c = &server.client;
    let mut body = new_op(&unique_project());
    body["description"] = json!("x".repeat(1024 * 1024));
    let request = c.request(Method::POST, "/v1/operations").json(&body);
    c.send(request, StatusCode::PAYLOAD_TOO_LARGE)
        .await
        .assert_error("payload_too_large", None);
}

#[tokio::test]
async fn patch_body_errors_name_the_field() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let path = op_path(&op);
    let cases = [
        (json!({"progress": 101}), "progress"),
        (json!({"progress": -1}), "progress"),
        (json!({"progress": "abc"}), "progress"),
        (json!({"status": "exploded"}), "status"),
        (json!({"status": "running", "bogus": true}), "bogus"),
        (
            json!({"status": "running", "warnings": [{"code": "W", "message": "m", "x": 1}]}),
            "warnings[0].x",
        ),
        (
            json!({"status": "running", "warnings": [{"code": "", "message": "m"}]}),
            "warnings[0].code",
        ),
        (json!({"status_message": "bell\u{7}"}), "status_message"),
        (json!({"expected_version": "one"}), "expected_version"),
    ];
    for (body, field) in cases {
        c.patch_resp(&path, &body, &[], StatusCode::BAD_REQUEST)
            .await
            .assert_error("invalid_argument", Some(field));
    }
    assert_eq!(c.get(&path, StatusCode::OK).await, op);
}
