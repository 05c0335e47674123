//! Every method of `google.longrunning.Operations`, against operations made and moved
//! through the REST API.

use std::collections::HashSet;
use std::time::Duration;

use opsd_domain::Role;
use opsd_grpc_proto::google::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, ListOperationsRequest, WaitOperationRequest,
    operation,
};
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;

use super::{Grpc, error_of, metadata, name_of};
use crate::support::{TestServer, id_of, new_op, unique_project};

#[tokio::test]
async fn get_shows_the_operation_with_its_metadata() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let op = c.create(&new_op(&p)).await;
    let op = c
        .patch(
            &op,
            &json!({"status": "running", "progress": 40, "status_message": "copying"}),
        )
        .await;
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;

    let got = grpc.get(&name_of(&op)).await.unwrap();
    assert_eq!(got.name, format!("projects/{p}/operations/{}", id_of(&op)));
    assert!(!got.done);
    assert!(got.result.is_none());
    let m = metadata(&got);
    assert_eq!(
        (m.kind.as_str(), m.r#type.as_str(), m.status.as_str()),
        ("vm", "update", "running")
    );
    assert_eq!((m.progress, m.status_message.as_str()), (40, "copying"));
    assert_eq!(
        (m.id.as_str(), m.project_id.as_str(), m.resource_id.as_str()),
        (id_of(&op), p.as_str(), "vm-1")
    );
    assert_eq!(m.version, op["version"].as_u64().unwrap());
    assert!(m.start_time.is_some() && m.end_time.is_none() && m.create_time.is_some());

    // Done: an Empty response.
    let done = c.patch(&op, &json!({"status": "done"})).await;
    let got = grpc.get(&name_of(&done)).await.unwrap();
    assert!(got.done);
    match got.result {
        Some(operation::Result::Response(ref any)) => {
            assert_eq!(any.type_url, "type.googleapis.com/google.protobuf.Empty");
            assert!(any.value.is_empty());
        }
        other => panic!("expected an Empty response, got {other:?}"),
    }
    assert!(metadata(&got).end_time.is_some());

    // The right id under another project's name is not found.
    let other = name_of(&json!({"project_id": "elsewhere", "id": id_of(&op)}));
    assert_eq!(grpc.get(&other).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn list_pages_through_a_filtered_project() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let mut running = HashSet::new();
    for i in 0..5 {
        let op = c.create(&new_op(&p)).await;
        if i % 2 == 0 {
            c.patch(&op, &json!({"status": "running"})).await;
            running.insert(name_of(&op));
        }
    }
    let finished = c
        .create(
            &json!({"project_id": p, "kind": "volume", "type": "create", "resource_id": "vol-9"}),
        )
        .await;
    c.patch(
        &finished,
        &json!({"status": "failed", "error": {"errors": [{"code": "X", "message": "no"}]}}),
    )
    .await;
    c.create(&new_op(&unique_project())).await; // another project's
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;

    let list = |filter: &str, page_size: i32, page_token: String| {
        let mut ops = grpc.ops();
        let r = grpc.req(ListOperationsRequest {
            name: format!("projects/{p}"),
            filter: filter.into(),
            page_size,
            page_token,
            return_partial_success: false,
        });
        async move { ops.list_operations(r).await }
    };
    // Pages of 2 over the 3 running ones.
    let mut seen = HashSet::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = list("metadata.status = \"running\"", 2, token)
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.operations.len() <= 2);
        for op in &page.operations {
            assert_eq!(metadata(op).status, "running");
            assert!(seen.insert(op.name.clone()), "{} twice", op.name);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, running);
    assert_eq!(pages, 2);

    let all = list("", 0, String::new()).await.unwrap().into_inner();
    assert_eq!(all.operations.len(), 6);
    let done = list("done = true", 0, String::new())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.operations.len(), 1);
    assert_eq!(done.operations[0].name, name_of(&finished));
    let open = list("done = false AND metadata.kind = vm", 0, String::new())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(open.operations.len(), 5);
    let by_resource = list(
        "metadata.resource_id = \"vol-9\" AND metadata.type = \"create\"",
        0,
        String::new(),
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(by_resource.operations.len(), 1);

    // A token is bound to its filter.
    let first = list("metadata.status = running", 1, String::new())
        .await
        .unwrap()
        .into_inner();
    let e = list("", 1, first.next_page_token).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}

#[tokio::test]
async fn cancel_fails_a_pending_one_flags_a_running_one_and_refuses_a_finished_one() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let grpc = Grpc::with_role(&server, Role::Producer, &[&p]).await;
    let cancel = |name: String| {
        let mut ops = grpc.ops();
        let r = grpc.req(CancelOperationRequest { name });
        async move { ops.cancel_operation(r).await }
    };

    let pending = c.create(&new_op(&p)).await;
    cancel(name_of(&pending)).await.unwrap();
    let got = grpc.get(&name_of(&pending)).await.unwrap();
    assert!(got.done);
    assert_eq!(error_of(&got).code, 1, "CANCELLED, as AIP-151 requires");
    assert_eq!(metadata(&got).status, "failed");

    let running = c.create(&new_op(&p)).await;
    c.patch(&running, &json!({"status": "running"})).await;
    cancel(name_of(&running)).await.unwrap();
    let got = grpc.get(&name_of(&running)).await.unwrap();
    assert!(!got.done);
    assert!(metadata(&got).cancel_requested);

    let e = cancel(name_of(&pending)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
}

#[tokio::test]
async fn delete_removes_a_finished_operation_and_refuses_an_unfinished_one() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let grpc = Grpc::with_role(&server, Role::Producer, &[&p]).await;
    let delete = |name: String| {
        let mut ops = grpc.ops();
        let r = grpc.req(DeleteOperationRequest { name });
        async move { ops.delete_operation(r).await }
    };

    let op = c.create(&new_op(&p)).await;
    c.patch(&op, &json!({"status": "running"})).await;
    let e = delete(name_of(&op)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("only a done or failed operation"),
        "{e:?}"
    );

    // Read once through REST so the read cache holds it: the delete must not leave it there.
    c.patch(&op, &json!({"status": "done"})).await;
    c.get(&format!("/v1/operations/{}", id_of(&op)), StatusCode::OK)
        .await;
    delete(name_of(&op)).await.unwrap();
    assert_eq!(
        grpc.get(&name_of(&op)).await.unwrap_err().code(),
        Code::NotFound
    );
    c.get(
        &format!("/v1/operations/{}", id_of(&op)),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        delete(name_of(&op)).await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn wait_answers_when_the_operation_finishes_or_at_its_timeout() {
    let server = TestServer::start().await;
    let c = server.client.clone();
    let p = unique_project();
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;
    let op = c.create(&new_op(&p)).await;
    let name = name_of(&op);

    // At its timeout: the operation as it is.
    let wait = |timeout: Duration| {
        let mut ops = grpc.ops();
        let r = grpc.req(WaitOperationRequest {
            name: name.clone(),
            timeout: Some(prost_types::Duration {
                seconds: i64::try_from(timeout.as_secs()).unwrap(),
                nanos: i32::try_from(timeout.subsec_nanos()).unwrap(),
            }),
        });
        async move { ops.wait_operation(r).await }
    };
    let early = wait(Duration::from_millis(200)).await.unwrap().into_inner();
    assert!(!early.done);

    // Woken by the REST write that finishes it, long before its 60 s timeout.
    let waiting = tokio::spawn(wait(Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.patch(&op, &json!({"status": "done"})).await;
    let started = std::time::Instant::now();
    let done = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the wait answered")
        .unwrap()
        .unwrap()
        .into_inner();
    assert!(done.done);
    assert!(started.elapsed() < Duration::from_secs(30));
    // Already finished: at once.
    assert!(
        wait(Duration::from_secs(60))
            .await
            .unwrap()
            .into_inner()
            .done
    );
}

/// `GetOperation` is answered from the read cache when it can be, and never with a
/// version older than an acknowledged write, whichever API or process made it; a cached
/// operation stays hidden under another project's name and from a key of another
/// project, as an uncached one is.
#[tokio::test]
async fn cached_gets_follow_every_write_and_keep_their_checks() {
    let server = TestServer::start().await;
    let p = unique_project();
    let op = server.client.create(&new_op(&p)).await;
    let id: uuid::Uuid = id_of(&op).parse().unwrap();
    let name = name_of(&op);
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;
    for i in 0..20u64 {
        // Through REST, then straight through the store (as another replica's change
        // reaches this process's feed).
        let version = if i % 2 == 0 {
            let patch = json!({"status": "running", "status_message": format!("step {i}")});
            server.client.patch(&op, &patch).await["version"]
                .as_u64()
                .unwrap()
        } else {
            let patch = opsd_domain::Patch {
                status_message: Some(format!("step {i}")),
                ..opsd_domain::Patch::default()
            };
            server.store.update(id, patch, None).await.unwrap().version
        };
        for _ in 0..2 {
            // The second read is the one the cache answers.
            let got = metadata(&grpc.get(&name).await.unwrap());
            assert_eq!(got.version, version, "after write {i}");
            assert_eq!(got.status_message, format!("step {i}"));
        }
    }
    // Every second read was answered from the cache (nothing else read through it).
    let metrics = server
        .client
        .get_resp("/metrics", StatusCode::OK)
        .await
        .text;
    let hits = crate::read_cache::counter(&metrics, "opsd_read_cache_hits_total");
    assert!(
        hits >= 20,
        "{hits} GetOperation answered from the cache:\n{metrics}"
    );

    let elsewhere = format!("projects/{}/operations/{id}", unique_project());
    let other_key = Grpc::with_role(&server, Role::Reader, &[&unique_project()]).await;
    for (client, name) in [(&grpc, &elsewhere), (&other_key, &name)] {
        let status = client.get(name).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{name}");
    }
}
