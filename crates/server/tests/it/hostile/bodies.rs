//! Body size and media type.

use super::*;

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
