//! Happy paths of the producer API and the single-operation reads: create (and its
//! idempotent retry), get, the state machine through PATCH, and the event history.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, id_of, new_op, op_path, time_of, unique_project};

#[tokio::test]
async fn create_returns_201_with_location_etag_and_a_pending_operation() {
    let server = TestServer::start().await;
    let project = unique_project();
    let resp = server
        .client
        .post_resp("/v1/operations", &new_op(&project), StatusCode::CREATED)
        .await;
    let op = resp.json();
    assert_eq!(resp.header("location"), op_path(&op));
    assert_eq!(resp.header("etag"), "\"1\"");
    assert_eq!(op["status"], "pending");
    assert_eq!(op["version"], 1);
    assert_eq!(op["progress"], 0);
    assert_eq!(op["project_id"], project.as_str());
    assert_eq!(op["created_at"], op["updated_at"]);
    assert!(op.get("started_at").is_none() && op.get("ended_at").is_none());
}

#[tokio::test]
async fn create_keeps_the_optional_fields() {
    let server = TestServer::start().await;
    let mut body = new_op(&unique_project());
    let extra = json!({
        "description": "resize vm-1", "request_id": "req-1", "user": "alice@example.com",
        "region": "us-sva-1", "zone": "us-sva-1a", "target_link": "https://x/vms/vm-1",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let op = server.client.create(&body).await;
    for (k, v) in extra.as_object().unwrap() {
        assert_eq!(&op[k], v, "{k}");
    }
    let fetched = server.client.get(&op_path(&op), StatusCode::OK).await;
    assert_eq!(fetched, op);
}

#[tokio::test]
async fn a_retry_with_the_same_request_id_and_body_returns_the_first_operation() {
    let server = TestServer::start().await;
    let project = unique_project();
    let mut body = new_op(&project);
    body["request_id"] = json!("retry-me");
    let first = server.client.create(&body).await;
    let resp = server
        .client
        .post_resp("/v1/operations", &body, StatusCode::OK)
        .await;
    assert_eq!(resp.json(), first);
    assert_eq!(resp.header("location"), op_path(&first));

    // The same body written with its keys in another order is the same request.
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{"details": {{"changes": {{"cpu": {{"to": 4, "from": 2}}}}}}, "request_id": "retry-me",
            "resource_id": "vm-1", "type": "update", "kind": "vm", "project_id": "{project}"}}"#
    ))
    .unwrap();
    let again = server
        .client
        .post_json("/v1/operations", &reordered, StatusCode::OK)
        .await;
    assert_eq!(id_of(&again), id_of(&first));
}

#[tokio::test]
async fn request_ids_are_scoped_to_their_project() {
    let server = TestServer::start().await;
    let mut a = new_op(&unique_project());
    a["request_id"] = json!("shared-key");
    let mut b = new_op(&unique_project());
    b["request_id"] = json!("shared-key");
    let op_a = server.client.create(&a).await;
    let op_b = server.client.create(&b).await;
    assert_ne!(id_of(&op_a), id_of(&op_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_identical_concurrent_creates_make_one_operation() {
    let server = TestServer::start().await;
    let mut body = new_op(&unique_project());
    body["request_id"] = json!("race");
    let send = |client: crate::support::TestClient, body: Value| async move {
        let r = client
            .request(reqwest::Method::POST, "/v1/operations")
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    let (a, b) = tokio::join!(
        tokio::spawn(send(server.client.clone(), body.clone())),
        tokio::spawn(send(server.client.clone(), body.clone())),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CREATED],
        "{a:?} {b:?}"
    );
    assert_eq!(id_of(&a.1), id_of(&b.1));
}

#[tokio::test]
async fn get_returns_the_operation_with_its_etag() {
    let server = TestServer::start().await;
    let op = server.client.create(&new_op(&unique_project())).await;
    let resp = server.client.get_resp(&op_path(&op), StatusCode::OK).await;
    assert_eq!(resp.header("etag"), "\"1\"");
    assert_eq!(resp.json(), op);
}

#[tokio::test]
async fn running_sets_started_at_and_progress_updates_bump_the_version() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;

    let resp = c
        .patch_resp(
            &op_path(&op),
            &json!({"status": "running"}),
            &[],
            StatusCode::OK,
        )
        .await;
    assert_eq!(resp.header("etag"), "\"2\"");
    let running = resp.json();
    assert_eq!(running["status"], "running");
    assert_eq!(running["version"], 2);
    assert!(time_of(&running, "started_at") >= time_of(&op, "created_at"));
    assert!(running.get("ended_at").is_none());

    let progressed = c
        .patch(
            &op,
            &json!({"progress": 40, "status_message": "copying disks"}),
        )
        .await;
    assert_eq!(progressed["status"], "running");
    assert_eq!(progressed["progress"], 40);
    assert_eq!(progressed["status_message"], "copying disks");
    assert_eq!(progressed["version"], 3);
    // started_at is the first transition to running, not the latest update.
    assert_eq!(progressed["started_at"], running["started_at"]);
    assert!(time_of(&progressed, "updated_at") >= time_of(&running, "updated_at"));
    assert_eq!(c.get(&op_path(&op), StatusCode::OK).await, progressed);
}

#[tokio::test]
async fn a_matching_if_match_or_expected_version_applies() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let path = op_path(&op);
    c.patch_json(
        &path,
        &json!({"status": "running"}),
        &[("if-match", "\"1\"")],
        StatusCode::OK,
    )
    .await;
    c.patch_json(
        &path,
        &json!({"progress": 5, "expected_version": 2}),
        &[],
        StatusCode::OK,
    )
    .await;
    let both = json!({"progress": 6, "expected_version": 3});
    let op = c
        .patch_json(&path, &both, &[("if-match", "\"3\"")], StatusCode::OK)
        .await;
    assert_eq!(op["version"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_at_the_same_version_let_exactly_one_through() {
    let server = TestServer::start().await;
    let op = server.client.create(&new_op(&unique_project())).await;
    let path = op_path(&op);
    let mut set = tokio::task::JoinSet::new();
    for progress in [10, 20, 30, 40] {
        let (c, path) = (server.client.clone(), path.clone());
        set.spawn(async move {
            let body = json!({"status": "running", "progress": progress});
            c.request(reqwest::Method::PATCH, &path)
                .header("if-match", "\"1\"")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let mut statuses = set.join_all().await;
    statuses.sort();
    let expected = [
        StatusCode::OK,
        StatusCode::PRECONDITION_FAILED,
        StatusCode::PRECONDITION_FAILED,
        StatusCode::PRECONDITION_FAILED,
    ];
    assert_eq!(statuses, expected);
    assert_eq!(server.client.get(&path, StatusCode::OK).await["version"], 2);
}

#[tokio::test]
async fn done_sets_progress_100_and_ended_at() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    c.patch(&op, &json!({"status": "running", "progress": 30}))
        .await;
    let done = c.patch(&op, &json!({"status": "done"})).await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["progress"], 100);
    assert!(time_of(&done, "ended_at") >= time_of(&done, "started_at"));
}

#[tokio::test]
async fn failed_records_the_error_and_ended_at() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let error = json!({"errors": [{"code": "QUOTA", "message": "no cpu left", "location": "cpu"}]});
    let failed = c
        .patch(
            &op,
            &json!({"status": "failed", "error": error, "http_error_status_code": 409,
                    "http_error_message": "Conflict"}),
        )
        .await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], error);
    assert_eq!(failed["http_error_status_code"], 409);
    assert_eq!(failed["http_error_message"], "Conflict");
    assert!(failed["ended_at"].is_string());
    // Straight from pending: it never ran.
    assert!(failed.get("started_at").is_none());
}

#[tokio::test]
async fn unknown_is_not_terminal() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    assert_eq!(
        c.patch(&op, &json!({"status": "unknown"})).await["status"],
        "unknown"
    );
    assert_eq!(
        c.patch(&op, &json!({"status": "running"})).await["status"],
        "running"
    );
    assert_eq!(
        c.patch(&op, &json!({"status": "done"})).await["status"],
        "done"
    );
}

#[tokio::test]
async fn warnings_are_appended() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let w1 = json!({"code": "SLOW", "message": "disk is slow", "data": [{"key": "disk", "value": "d1"}]});
    let w2 = json!({"code": "RETRY", "message": "retried once", "data": []});
    c.patch(&op, &json!({"status": "running", "warnings": [w1]}))
        .await;
    let op = c.patch(&op, &json!({"warnings": [w2]})).await;
    assert_eq!(op["warnings"], json!([w1, w2]));
}

#[tokio::test]
async fn events_list_every_change_oldest_first() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    c.patch(&op, &json!({"status": "running"})).await;
    c.patch(&op, &json!({"progress": 50, "status_message": "half"}))
        .await;
    let done = c.patch(&op, &json!({"status": "done"})).await;

    let events = c
        .get(&format!("{}/events", op_path(&op)), StatusCode::OK)
        .await;
    let items = events["items"].as_array().unwrap();
    let summary: Vec<_> = items
        .iter()
        .map(|e| {
            (
                e["version"].clone(),
                e["status"].clone(),
                e["progress"].clone(),
                e["message"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!(1), json!("pending"), json!(0), Value::Null),
            (json!(2), json!("running"), json!(0), Value::Null),
            (json!(3), json!("running"), json!(50), json!("half")),
            (json!(4), json!("done"), json!(100), json!("half")),
        ]
    );
    for pair in items.windows(2) {
        assert!(pair[0]["seq"].as_u64().unwrap() < pair[1]["seq"].as_u64().unwrap());
        assert!(time_of(&pair[0], "at") <= time_of(&pair[1], "at"));
    }
    for e in items {
        let mut keys: Vec<_> = e.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["at", "message", "progress", "seq", "status", "version"]
        );
    }
    assert_eq!(items[3]["at"], done["updated_at"]);
    assert_eq!(items[0]["at"], op["created_at"]);
}
