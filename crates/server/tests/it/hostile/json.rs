//! Strict JSON: duplicate keys, unknown fields, wrong types, non-objects, nesting.

use super::*;

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
