//! Every SDK call against the real server, and the errors it keeps.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use opsd_client::{
    CANCELLED, ClaimRequest, Kind, ListQuery, NewOperation, OpType, OperationPatch, Role, Status,
};

use crate::support::{Server, client_for, create};

#[tokio::test]
async fn create_get_update_events() {
    let server = Server::start().await;
    let client = server.client();
    let new = NewOperation::new("proj-a", Kind::Volume, OpType::Create, "vol-1")
        .request_id("make-vol-1")
        .description("a new volume");
    let op = client.create(&new).await.unwrap();
    assert_eq!(
        (op.status, op.version, op.progress),
        (Status::Pending, 1, 0)
    );
    assert_eq!(op.user.as_deref(), Some("sdk-admin"));
    let again = client.create(&new).await.unwrap();
    assert_eq!(
        again.id, op.id,
        "the same request_id returns the first operation"
    );

    assert_eq!(client.get(op.id).await.unwrap(), op);

    let running = OperationPatch {
        status: Some(Status::Running),
        progress: Some(40),
        status_message: Some("formatting".into()),
        ..OperationPatch::default()
    };
    let moved = client.update(op.id, &running, Some(1)).await.unwrap();
    assert_eq!(
        (moved.status, moved.progress, moved.version),
        (Status::Running, 40, 2)
    );

    // A stale If-Match: the server's code, message and request id reach the caller.
    let stale = client.update(op.id, &running, Some(1)).await.unwrap_err();
    let api = stale.api().expect("a server error");
    assert_eq!(
        (api.status, api.code.as_str()),
        (412, "precondition_failed")
    );
    assert!(api.message.contains("version 2"), "{api}");
    assert!(api.request_id.is_some());

    let events = client.events(op.id).await.unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(events[1].message.as_deref(), Some("formatting"));
}

#[tokio::test]
async fn errors_name_the_field() {
    let server = Server::start().await;
    let client = server.client();
    let bad = NewOperation::new("no spaces allowed", Kind::Vm, OpType::Create, "vm-1");
    let e = client.create(&bad).await.unwrap_err();
    let api = e.api().unwrap();
    assert_eq!((api.status, api.code.as_str()), (400, "invalid_argument"));
    assert_eq!(api.field.as_deref(), Some("project_id"));
    assert!(e.to_string().contains("field project_id"), "{e}");

    let missing = client.get(uuid::Uuid::now_v7()).await.unwrap_err();
    assert_eq!(missing.code(), Some("not_found"));

    let stranger = client_for(&server.base(), "opsd_not-a-key");
    let denied = stranger.get(uuid::Uuid::now_v7()).await.unwrap_err();
    assert_eq!(denied.status(), Some(401));
}

#[tokio::test]
async fn list_streams_every_page() {
    let server = Server::start().await;
    let client = server.client();
    let mut created = Vec::new();
    for i in 0..23 {
        created.push(create(&client, "proj-pages", &format!("vm-{i}")).await.id);
    }
    create(&client, "proj-other", "vm-x").await;
    // 23 operations, 5 per page: 5 pages, fetched as the stream is read.
    let query = ListQuery::new("proj-pages").sort("created_at:asc").limit(5);
    let first = client.list_page(&query, None).await.unwrap();
    assert_eq!(first.items.len(), 5);
    assert_eq!(first.pagination.total_count, 23);
    let all: Vec<_> = client.list(query).try_collect().await.unwrap();
    let ids: Vec<_> = all.iter().map(|o| o.id).collect();
    assert_eq!(
        ids, created,
        "every operation once, in order, across 5 pages"
    );

    let none: Vec<_> = client
        .list(ListQuery::new("proj-pages").status(Status::Done))
        .try_collect()
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn claim_heartbeat_cancel_finish() {
    let server = Server::start().await;
    let client = server.client();
    let op = create(&client, "proj-w", "vm-1").await;
    let request = ClaimRequest {
        project_id: Some("proj-w".into()),
        kinds: vec![Kind::Vm],
        statuses: vec![],
        lease_seconds: 30,
        worker: "sdk-test".into(),
    };
    let lease = client.claim(&request).await.unwrap().expect("one to claim");
    assert_eq!(lease.operation.id, op.id);
    assert_eq!(lease.operation.status, Status::Running);
    assert!(
        client.claim(&request).await.unwrap().is_none(),
        "nothing left"
    );

    let renewed = client
        .heartbeat(op.id, &lease.lease_token, Some(20), Some("copying"))
        .await
        .unwrap();
    assert_eq!(renewed.operation.progress, 20);
    assert!(!renewed.operation.cancel_requested);

    // Cancelling a running operation only asks; its worker learns it by heartbeat.
    let flagged = client.cancel(op.id).await.unwrap();
    assert_eq!(flagged.status, Status::Running);
    assert!(flagged.cancel_requested);
    let again = client.cancel(op.id).await.unwrap();
    assert_eq!(
        again.version, flagged.version,
        "asking twice changes nothing"
    );
    let renewed = client
        .heartbeat(op.id, &lease.lease_token, None, None)
        .await
        .unwrap();
    assert!(renewed.operation.cancel_requested);

    let wrong = client
        .heartbeat(op.id, "not-the-token", None, None)
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some("lease_mismatch"));

    let done = OperationPatch {
        status: Some(Status::Done),
        lease_token: Some(lease.lease_token.clone()),
        ..OperationPatch::default()
    };
    let finished = client.update(op.id, &done, None).await.unwrap();
    assert_eq!(
        finished.status,
        Status::Done,
        "a worker may still finish done if too late"
    );

    let late = client.cancel(op.id).await.unwrap_err();
    let api = late.api().unwrap();
    assert_eq!((api.status, api.code.as_str()), (409, "already_finished"));
    assert_eq!(api.should_retry, Some(false));
    // The server saw that request once: the SDK did not retry it.
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", server.base()))
        .bearer_auth(&server.admin_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = r#"opsd_http_requests_total{method="POST",route="/v1/operations/{operation_id}/cancel",status="409"}"#;
    let line = metrics
        .lines()
        .find(|l| l.starts_with(series))
        .expect(series);
    assert_eq!(line.rsplit(' ').next(), Some("1"), "{line}");
}

#[tokio::test]
async fn cancelling_a_pending_operation_fails_it_at_once() {
    let server = Server::start().await;
    let client = server.client();
    let op = create(&client, "proj-c", "vm-1").await;
    let cancelled = client.cancel(op.id).await.unwrap();
    assert_eq!(cancelled.status, Status::Failed);
    assert_eq!(cancelled.error.unwrap().errors[0].code, CANCELLED);
    let statuses: Vec<_> = client
        .events(op.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [Status::Pending, Status::Failed]);
}

#[tokio::test]
async fn wait_returns_when_finished_or_at_the_timeout() {
    let server = Server::start().await;
    let client = server.client();
    let op = create(&client, "proj-wait", "vm-1").await;

    let started = Instant::now();
    let still = client
        .wait(op.id, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(still.status, Status::Pending);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let finisher = client.clone();
    let id = op.id;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let patch = OperationPatch {
            status: Some(Status::Done),
            ..OperationPatch::default()
        };
        finisher.update(id, &patch, None).await.unwrap();
    });
    let started = Instant::now();
    let done = client.wait(op.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.status, Status::Done);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the write"
    );
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked() {
    let server = Server::start().await;
    let client = server.client();
    let created = client
        .create_key("reader-1", Role::Reader, &["proj-k".into()])
        .await
        .unwrap();
    assert!(created.key_secret.starts_with("opsd_"));
    let listed = client.list_keys().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|k| k.id == created.key.id && k.revoked_at.is_none())
    );

    let reader = client_for(&server.base(), &created.key_secret);
    let list = reader
        .list_page(&ListQuery::new("proj-k"), None)
        .await
        .unwrap();
    assert_eq!(list.pagination.total_count, 0);
    let refused = reader
        .create(&NewOperation::new("proj-k", Kind::Vm, OpType::Create, "vm"))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403));

    client.revoke_key(created.key.id).await.unwrap();
    let listed = client.list_keys().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|k| k.id == created.key.id && k.revoked_at.is_some())
    );
    let gone = reader
        .list_page(&ListQuery::new("proj-k"), None)
        .await
        .unwrap_err();
    assert_eq!(gone.status(), Some(401));
}
