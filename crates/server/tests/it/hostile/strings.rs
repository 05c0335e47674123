//! Ids (length and character set), free text and labels.

use super::*;

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
async fn description_and_status_message_are_at_most_4096_characters() {
    let server = TestServer::start().await;
    let c = &server.client;
    let w = Witness::plant(c).await;
    let p = unique_project();
    // Characters (as JSON Schema's maxLength counts them), not bytes: 4096 two-byte
    // characters fill the limit exactly.
    let wide = "é".repeat(4096);
    assert_eq!(wide.len(), 8192);
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
                json!({"http_error_message": s(4096)}),
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
                        json!({"http_error_message": s(4097)}),
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
