//! Keys, roles and project scopes over gRPC: the REST rules, as gRPC codes; and the
//! per-key rate limit and the concurrency caps, with retry info.

use std::time::Duration;

use opsd_domain::Role;
use opsd_grpc_proto::google::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, ListOperationsRequest, WaitOperationRequest,
};
use opsd_server::{Config, RateLimit};
use serde_json::json;
use tonic::Code;

use super::{Grpc, error_info, name_of, retry_delay};
use crate::support::{TestServer, new_op, unique_project};

#[tokio::test]
async fn keys_roles_and_scopes_are_the_rest_apis() {
    let server = TestServer::start().await;
    let c = &server.client;
    let (mine, theirs) = (unique_project(), unique_project());
    let op = c.create(&new_op(&mine)).await;
    let hidden = c.create(&new_op(&theirs)).await;
    c.patch(&op, &json!({"status": "done"})).await;

    for grpc in [
        Grpc::connect(&server, None).await,
        Grpc::connect(&server, Some("opsd_not_a_key")).await,
    ] {
        let e = grpc.get(&name_of(&op)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert_eq!(error_info(&e).reason, "unauthenticated");
    }

    let reader = Grpc::with_role(&server, Role::Reader, &[&mine]).await;
    reader.get(&name_of(&op)).await.unwrap();
    // Another project's operation does not exist for this key.
    assert_eq!(
        reader.get(&name_of(&hidden)).await.unwrap_err().code(),
        Code::NotFound
    );
    let list = |grpc: &Grpc, project: &str| {
        let mut ops = grpc.ops();
        let r = grpc.req(ListOperationsRequest {
            name: format!("projects/{project}"),
            ..Default::default()
        });
        async move { ops.list_operations(r).await }
    };
    assert!(list(&reader, &mine).await.is_ok());
    let e = list(&reader, &theirs).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // Cancel and delete need the producer role.
    let e = reader
        .ops()
        .cancel_operation(reader.req(CancelOperationRequest { name: name_of(&op) }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = reader
        .ops()
        .delete_operation(reader.req(DeleteOperationRequest { name: name_of(&op) }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // A producer of another project cannot see it to delete it.
    let stranger = Grpc::with_role(&server, Role::Producer, &[&theirs]).await;
    let e = stranger
        .ops()
        .delete_operation(stranger.req(DeleteOperationRequest { name: name_of(&op) }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let producer = Grpc::with_role(&server, Role::Producer, &[&mine]).await;
    producer
        .ops()
        .delete_operation(producer.req(DeleteOperationRequest { name: name_of(&op) }))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_rate_limit_answers_resource_exhausted_with_retry_info() {
    let server = TestServer::start_with(Config {
        rate_limit: Some(RateLimit {
            per_second: 0.01,
            burst: 2.0,
        }),
        ..Config::default()
    })
    .await;
    let p = unique_project();
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;
    let name = format!("projects/{p}/operations/{}", uuid::Uuid::now_v7());
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(grpc.get(&name).await.unwrap_err());
    }
    assert_eq!(codes[0].code(), Code::NotFound);
    let limited = &codes[2];
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert!(
        retry_delay(limited).is_some_and(|d| d.seconds >= 1),
        "{limited:?}"
    );
}

#[tokio::test]
async fn waits_count_against_the_long_lived_cap_and_are_shed_with_retry_info() {
    let server = TestServer::start_with(Config {
        max_long_lived_requests: 1,
        ..Config::default()
    })
    .await;
    let c = &server.client;
    let p = unique_project();
    let op = c.create(&new_op(&p)).await;
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;
    let wait = || {
        let mut ops = grpc.ops();
        let r = grpc.req(WaitOperationRequest {
            name: name_of(&op),
            timeout: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        });
        async move { ops.wait_operation(r).await }
    };
    let parked = tokio::spawn(wait());
    // The parked wait holds the only permit once the store was read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server_waiters(&server).await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first wait never parked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = wait().await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(retry_delay(&e).is_some(), "{e:?}");
    // Ordinary calls are not held up by the cap on long-lived ones.
    grpc.get(&name_of(&op)).await.unwrap();
    c.patch(&op, &json!({"status": "done"})).await;
    let done = tokio::time::timeout(Duration::from_secs(30), parked)
        .await
        .unwrap()
        .unwrap();
    assert!(done.unwrap().into_inner().done);
}

/// `opsd_waiters` from `/metrics`.
async fn server_waiters(server: &TestServer) -> f64 {
    let text = server
        .client
        .get_resp("/metrics", reqwest::StatusCode::OK)
        .await
        .text;
    text.lines()
        .find_map(|l| l.strip_prefix("opsd_waiters ")?.parse().ok())
        .unwrap_or(0.0)
}
