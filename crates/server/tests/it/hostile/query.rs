//! Query strings: repeated, unknown, oversized; Google parameters, filters, fields.

use super::*;

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
