//! Retention in the background, `/metrics`, and the OpenAPI document of live operations.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::{TestServer, eventually};

/// The polling GETs put the done operation in the read cache, so this also shows that
/// a retention pass empties it: otherwise the cached body would be served for the
/// cache's 30 s maximum age, past this test's 10 s wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_finished_operations_in_the_background() {
    let server = TestServer::with_background(Duration::from_secs(1)).await;
    let done = server.create("p", "vm", "vm-1").await;
    let done_id = done["id"].as_str().unwrap();
    server
        .patch(done_id, json!({"status": "done"}), StatusCode::OK)
        .await;
    let pending = server.create("p", "vm", "vm-2").await;
    let running = server.create("p", "vm", "vm-3").await;
    let running_id = running["id"].as_str().unwrap();
    server
        .patch(running_id, json!({"status": "running"}), StatusCode::OK)
        .await;

    eventually(
        Duration::from_secs(10),
        "retention to delete the done operation",
        || async {
            let (status, _) = server
                .try_call(Method::GET, &format!("/v1/operations/{done_id}"), None)
                .await;
            status == StatusCode::NOT_FOUND
        },
    )
    .await;
    server.get(pending["id"].as_str().unwrap()).await;
    server.get(running_id).await;
    server
        .call(
            Method::GET,
            &format!("/v1/operations/{done_id}/events"),
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
    assert_eq!(
        server
            .metric("opsd_retention_deleted_operations_total")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route() {
    let server = TestServer::start().await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap();
    server.get(id).await;
    server.get(id).await;
    server
        .call(
            Method::GET,
            "/v1/operations/nope",
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
    server
        .call(Method::GET, "/no/such/path", None, StatusCode::NOT_FOUND)
        .await;

    let response = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for line in [
        "opsd_http_requests_total{method=\"GET\",route=\"/v1/operations/{operation_id}\",status=\"200\"} 2",
        "opsd_http_requests_total{method=\"GET\",route=\"/v1/operations/{operation_id}\",status=\"400\"} 1",
        "opsd_http_requests_total{method=\"POST\",route=\"/v1/operations\",status=\"201\"} 1",
        "opsd_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "opsd_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/operations/{operation_id}\"} 3",
        "opsd_waiters 0",
        "opsd_watch_streams 0",
        "opsd_leases_held 0",
        "opsd_lease_expirations_total 0",
        "opsd_retention_deleted_operations_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    // Raw paths never become labels.
    assert!(!text.contains(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_live_operations() {
    let server = TestServer::start().await;
    let doc: Value = server
        .call(Method::GET, "/openapi.json", None, StatusCode::OK)
        .await;
    for (path, method) in [
        ("/v1/operations/{operation_id}/wait", "get"),
        ("/v1/operations/watch", "get"),
        ("/v1/operations/claim", "post"),
        ("/v1/operations/{operation_id}/heartbeat", "post"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
}
