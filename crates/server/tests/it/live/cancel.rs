//! `POST /v1/operations/{id}/cancel` over HTTP: each status's rule, and the request
//! visible in both dialects, the history, heartbeat and claim answers.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::{TestServer, eventually};

async fn cancel(server: &TestServer, id: &str, expect: StatusCode) -> serde_json::Value {
    server
        .call(
            Method::POST,
            &format!("/v1/operations/{id}/cancel"),
            None,
            expect,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_operation_fails_at_once_and_a_finished_one_is_a_409() {
    let server = TestServer::start().await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap();
    let cancelled = cancel(&server, id, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "failed");
    assert_eq!(cancelled["error"]["errors"][0]["code"], "CANCELLED");
    assert_eq!(cancelled["version"], 2);

    let response = server
        .http
        .post(format!("{}/v1/operations/{id}/cancel", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "already_finished");
    assert_eq!(body["field"], "status");

    let missing = uuid::Uuid::now_v7();
    cancel(&server, &missing.to_string(), StatusCode::NOT_FOUND).await;
    cancel(&server, "not-a-uuid", StatusCode::BAD_REQUEST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_operation_is_flagged_for_its_worker_in_every_view() {
    let server = TestServer::start().await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap().to_owned();
    assert!(
        op.get("cancel_requested").is_none(),
        "absent until requested: {op}"
    );
    let claimed = server
        .call(
            Method::POST,
            "/v1/operations/claim",
            Some(json!({"project_id": "p", "lease_seconds": 30, "worker": "w"})),
            StatusCode::OK,
        )
        .await;
    let token = claimed["lease_token"].as_str().unwrap().to_owned();

    let flagged = cancel(&server, &id, StatusCode::OK).await;
    assert_eq!(flagged["status"], "running");
    assert_eq!(flagged["cancel_requested"], true);
    assert_eq!(flagged["status_message"], "cancellation requested");
    let again = cancel(&server, &id, StatusCode::OK).await;
    assert_eq!(again["version"], flagged["version"], "no second change");

    let google = server
        .call(
            Method::GET,
            &format!("/deploymentmanager/v2/projects/p/global/operations/operation-{id}"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(google["cancelRequested"], true);
    assert_eq!(google["status"], "RUNNING");

    let events = server
        .call(
            Method::GET,
            &format!("/v1/operations/{id}/events"),
            None,
            StatusCode::OK,
        )
        .await;
    let last = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["message"], "cancellation requested");

    let beat = server
        .call(
            Method::POST,
            &format!("/v1/operations/{id}/heartbeat"),
            Some(json!({"lease_token": token})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(beat["operation"]["cancel_requested"], true);

    // The worker stops and records why; the lease token is still required.
    server
        .patch(&id, json!({"status": "failed", "error": {"errors": [{"code": "CANCELLED", "message": "stopped"}]}}), StatusCode::CONFLICT)
        .await;
    let done = server
        .patch(
            &id,
            json!({"status": "failed", "lease_token": token,
                   "error": {"errors": [{"code": "CANCELLED", "message": "stopped"}]}}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(done["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_operation_claimed_again_carries_the_request() {
    let server = TestServer::with_background(Duration::from_secs(3600)).await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap().to_owned();
    server
        .call(
            Method::POST,
            "/v1/operations/claim",
            Some(json!({"project_id": "p", "lease_seconds": 1, "worker": "gone"})),
            StatusCode::OK,
        )
        .await;
    eventually(Duration::from_secs(10), "lease expiry", || async {
        server.get(&id).await["status"] == "unknown"
    })
    .await;
    let flagged = cancel(&server, &id, StatusCode::OK).await;
    assert_eq!(
        (
            flagged["status"].clone(),
            flagged["cancel_requested"].clone()
        ),
        (json!("unknown"), json!(true))
    );
    let reclaimed = server
        .call(
            Method::POST,
            "/v1/operations/claim",
            Some(json!({"project_id": "p", "statuses": ["unknown"], "lease_seconds": 30, "worker": "reconciler"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(reclaimed["operation"]["cancel_requested"], true);
}
