//! Collections: changes, arrays, warnings, errors, api key bodies.

use super::*;

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
