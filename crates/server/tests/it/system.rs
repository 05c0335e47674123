//! Operating endpoints, the JSON 404/405 fallbacks and request ids.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{TestServer, new_op, unique_project};

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start().await;
    server.client.get_resp("/healthz", StatusCode::OK).await;
    let ready = server.client.get("/readyz", StatusCode::OK).await;
    assert_eq!(ready["ready"], true, "{ready}");
    let checks = &ready["checks"];
    assert_eq!(checks["store"], "ok", "{ready}");
    assert_eq!(checks["writer"], "ok", "{ready}");
    assert_eq!(checks["workers"], "ok", "{ready}");
    // Nothing committed is waiting to be published. The disk is known on SQLite (it is
    // local), not reported on PostgreSQL (the database server's to watch).
    assert_eq!(checks["feed_lag_ms"], 0, "{ready}");
    match opsd_store_suite::backend() {
        opsd_store_suite::TestBackend::Sqlite => {
            assert_eq!(checks["disk"], "ok", "{ready}");
        }
        opsd_store_suite::TestBackend::Postgres => {
            assert!(checks["disk"].is_null(), "{ready}");
        }
    }
    // The fault hooks do not exist unless the process was started with them.
    let request = server
        .client
        .request(Method::POST, "/debug/faults/sqlite-writer/panic");
    server.client.send(request, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn openapi_describes_the_operations_paths() {
    let server = TestServer::start().await;
    let doc = server.client.get("/openapi.json", StatusCode::OK).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with('3'),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for path in ["/v1/operations", "/v1/operations/{operation_id}"] {
        assert!(paths.contains_key(path), "{path} not in {:?}", paths.keys());
    }
    for method in ["get", "post"] {
        assert!(paths["/v1/operations"][method].is_object(), "{method}");
    }
    for method in ["get", "patch"] {
        assert!(
            paths["/v1/operations/{operation_id}"][method].is_object(),
            "{method}"
        );
    }
}

#[tokio::test]
async fn docs_is_the_vendored_swagger_ui_over_the_openapi_document() {
    let server = TestServer::start().await;
    let resp = server.client.get_resp("/docs", StatusCode::OK).await;
    assert!(resp.header("content-type").starts_with("text/html"));
    assert!(
        resp.text.contains("/docs/assets/swagger-ui-bundle.js"),
        "{}",
        resp.text
    );
    assert!(
        resp.header("content-security-policy")
            .contains("script-src 'self'")
    );
    // The bundle is the npm release, served from the binary.
    let bundle = server
        .client
        .get_resp("/docs/assets/swagger-ui-bundle.js", StatusCode::OK)
        .await;
    assert!(bundle.header("content-type").starts_with("text/javascript"));
    assert!(bundle.text.contains("SwaggerUIBundle"));
    let init = server
        .client
        .get_resp("/docs/assets/docs.js", StatusCode::OK)
        .await;
    assert!(init.text.contains("'/openapi.json'"));
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_json() {
    let server = TestServer::start().await;
    let c = &server.client;
    for path in ["/nope", "/v1/operation", "/v1/operations/a/b/c"] {
        c.get_resp(path, StatusCode::NOT_FOUND)
            .await
            .assert_error("not_found", None);
    }
    for (method, path) in [
        (
            Method::DELETE,
            "/v1/operations/0190d6e4-8c3a-7000-8000-000000000000",
        ),
        (Method::PUT, "/v1/operations"),
        (
            Method::POST,
            "/v1/operations/0190d6e4-8c3a-7000-8000-000000000000/events",
        ),
        (Method::POST, "/healthz"),
    ] {
        c.send(c.request(method, path), StatusCode::METHOD_NOT_ALLOWED)
            .await
            .assert_error("method_not_allowed", None);
    }
}

#[tokio::test]
async fn a_sane_incoming_request_id_is_echoed_in_headers_and_error_bodies() {
    let server = TestServer::start().await;
    let c = &server.client;
    let ok = c
        .send(
            c.request(Method::POST, "/v1/operations")
                .header("x-request-id", "trace-123")
                .json(&new_op(&unique_project())),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(ok.header("x-request-id"), "trace-123");

    let long = "r".repeat(128);
    for id in ["trace-456", long.as_str()] {
        let err = c
            .send(
                c.request(Method::GET, "/v1/operations/bad")
                    .header("x-request-id", id),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(err.header("x-request-id"), id);
        assert_eq!(err.assert_error("invalid_argument", None)["request_id"], id);
    }
}

#[tokio::test]
async fn an_insane_or_missing_request_id_is_replaced() {
    let server = TestServer::start().await;
    let c = &server.client;
    let long = "r".repeat(129);
    let mut seen = Vec::new();
    for incoming in [None, Some(""), Some("has space"), Some(long.as_str())] {
        let mut request = c.request(Method::GET, "/nope");
        if let Some(id) = incoming {
            request = request.header("x-request-id", id);
        }
        let resp = c.send(request, StatusCode::NOT_FOUND).await;
        let id = resp.header("x-request-id").to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "generated id {id:?}");
        assert_eq!(resp.json()["request_id"], Value::String(id.clone()));
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "ids are unique per request");
}
