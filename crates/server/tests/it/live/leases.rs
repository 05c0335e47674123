//! Worker leases over HTTP: claim, heartbeat, PATCH with the token, expiry.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::support::{TestServer, eventually};

async fn claim(server: &TestServer, body: Value, expect: StatusCode) -> Value {
    server
        .call(Method::POST, "/v1/operations/claim", Some(body), expect)
        .await
}

async fn heartbeat(server: &TestServer, id: &str, body: Value, expect: StatusCode) -> Value {
    server
        .call(
            Method::POST,
            &format!("/v1/operations/{id}/heartbeat"),
            Some(body),
            expect,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_claims_heartbeats_and_finishes() {
    let server = TestServer::start().await;
    claim(
        &server,
        json!({"lease_seconds": 30, "worker": "w1"}),
        StatusCode::NO_CONTENT,
    )
    .await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap();

    let claimed = claim(
        &server,
        json!({"project_id": "p", "kinds": ["vm"], "lease_seconds": 30, "worker": "w1"}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(claimed["operation"]["id"], op["id"]);
    assert_eq!(claimed["operation"]["status"], "running");
    assert_eq!(
        claimed["operation"]["status_message"],
        "claimed by worker \"w1\""
    );
    let token = claimed["lease_token"].as_str().unwrap().to_owned();
    let expires = claimed["lease_expires_at"].as_str().unwrap().to_owned();
    assert_eq!(server.metric("opsd_leases_held").await, Some(1.0));

    // Without the token, or with another, a leased operation refuses changes.
    for (body, code) in [
        (json!({"progress": 10}), "lease_required"),
        (
            json!({"progress": 10, "lease_token": "x"}),
            "lease_mismatch",
        ),
    ] {
        let response = server
            .http
            .patch(format!("{}/v1/operations/{id}", server.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()["x-should-retry"], "false");
        let err: Value = response.json().await.unwrap();
        assert_eq!(
            (err["code"].as_str(), err["field"].as_str()),
            (Some(code), Some("lease_token"))
        );
    }

    let beat = heartbeat(
        &server,
        id,
        json!({"lease_token": token, "progress": 50, "status_message": "copying"}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(beat["operation"]["progress"], 50);
    assert_eq!(beat["operation"]["status_message"], "copying");
    assert!(beat["lease_expires_at"].as_str().unwrap() >= expires.as_str());
    heartbeat(
        &server,
        id,
        json!({"lease_token": "x"}),
        StatusCode::CONFLICT,
    )
    .await;

    let done = server
        .patch(
            id,
            json!({"status": "done", "lease_token": token}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(done["status"], "done");
    assert_eq!(server.metric("opsd_leases_held").await, Some(0.0));
    let err = heartbeat(
        &server,
        id,
        json!({"lease_token": token}),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(err["code"], "lease_not_held");
    claim(
        &server,
        json!({"lease_seconds": 30, "worker": "w1"}),
        StatusCode::NO_CONTENT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_over_http_take_each_operation_once() {
    let server = Arc::new(TestServer::start().await);
    let mut all = BTreeSet::new();
    for i in 0..40 {
        let op = server
            .create("p", if i % 2 == 0 { "vm" } else { "vpc" }, "r")
            .await;
        all.insert(op["id"].as_str().unwrap().to_owned());
    }
    let mut claimers = JoinSet::new();
    for w in 0..4 {
        let server = server.clone();
        claimers.spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..100 {
                let body = json!({"lease_seconds": 60, "worker": format!("w{w}")});
                let (status, c) = server
                    .try_call(Method::POST, "/v1/operations/claim", Some(body))
                    .await;
                match status {
                    StatusCode::OK => mine.push(c["operation"]["id"].as_str().unwrap().to_owned()),
                    StatusCode::NO_CONTENT => break,
                    other => panic!("claim answered {other}: {c}"),
                }
            }
            mine
        });
    }
    let mut claimed = Vec::new();
    while let Some(mine) = claimers.join_next().await {
        claimed.extend(mine.unwrap());
    }
    assert_eq!(claimed.len(), all.len());
    assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>(), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_turns_unknown_and_a_reconciler_claims_it() {
    let server = TestServer::with_background(Duration::from_secs(3600)).await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap();
    let claimed = claim(
        &server,
        json!({"lease_seconds": 1, "worker": "w1"}),
        StatusCode::OK,
    )
    .await;
    let token = claimed["lease_token"].as_str().unwrap().to_owned();
    let expires = claimed["lease_expires_at"].as_str().unwrap().to_owned();

    eventually(Duration::from_secs(10), "the lease to expire", || async {
        server.get(id).await["status"] == "unknown"
    })
    .await;
    let unknown = server.get(id).await;
    assert_eq!(
        unknown["status_message"],
        format!("worker \"w1\" stopped heartbeating; lease expired at {expires}")
    );
    assert_eq!(
        server.metric("opsd_lease_expirations_total").await,
        Some(1.0)
    );
    let err = heartbeat(
        &server,
        id,
        json!({"lease_token": token}),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(err["code"], "lease_not_held");

    // Workers do not see unknown operations; a reconciler asks for them.
    claim(
        &server,
        json!({"lease_seconds": 30, "worker": "w2"}),
        StatusCode::NO_CONTENT,
    )
    .await;
    let reconciled = claim(
        &server,
        json!({"statuses": ["unknown"], "lease_seconds": 30, "worker": "reconciler"}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(reconciled["operation"]["id"], op["id"]);
    assert_eq!(reconciled["operation"]["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_lease_alive() {
    let server = TestServer::with_background(Duration::from_secs(3600)).await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap();
    let claimed = claim(
        &server,
        json!({"lease_seconds": 2, "worker": "w1"}),
        StatusCode::OK,
    )
    .await;
    let token = claimed["lease_token"].as_str().unwrap().to_owned();
    // 3 s of work on a 2 s lease, with the reaper running.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        heartbeat(&server, id, json!({"lease_token": token}), StatusCode::OK).await;
    }
    let alive = server.get(id).await;
    assert_eq!(alive["status"], "running");
    assert_eq!(
        alive["version"], claimed["operation"]["version"],
        "bare heartbeats are not changes"
    );
    assert_eq!(
        server.metric("opsd_lease_expirations_total").await,
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_heartbeats_are_validated() {
    let server = TestServer::start().await;
    for (body, field) in [
        (json!({"lease_seconds": 0, "worker": "w"}), "lease_seconds"),
        (
            json!({"lease_seconds": 3601, "worker": "w"}),
            "lease_seconds",
        ),
        (json!({"lease_seconds": -1, "worker": "w"}), "lease_seconds"),
        (json!({"lease_seconds": 5, "worker": "has space"}), "worker"),
        (
            json!({"lease_seconds": 5, "worker": "w", "statuses": ["running"]}),
            "statuses",
        ),
        (
            json!({"lease_seconds": 5, "worker": "w", "kinds": ["vms"]}),
            "kinds[0]",
        ),
        (
            json!({"lease_seconds": 5, "worker": "w", "priority": 1}),
            "priority",
        ),
    ] {
        let err = claim(&server, body.clone(), StatusCode::BAD_REQUEST).await;
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    claim(&server, json!({"worker": "w"}), StatusCode::BAD_REQUEST).await;
    let op = server.create("p", "vm", "vm-1").await;
    let id = op["id"].as_str().unwrap();
    let err = heartbeat(
        &server,
        id,
        json!({"lease_token": "t", "progress": 101}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(err["field"], "progress");
    let err = heartbeat(
        &server,
        id,
        json!({"lease_token": "t"}),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(err["code"], "lease_not_held");
    let missing = uuid::Uuid::now_v7();
    heartbeat(
        &server,
        &missing.to_string(),
        json!({"lease_token": "t"}),
        StatusCode::NOT_FOUND,
    )
    .await;
}
