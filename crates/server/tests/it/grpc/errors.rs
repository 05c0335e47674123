//! The error of a failed operation (the mapping table), and how bad calls are answered.

use std::time::Duration;

use opsd_domain::Role;
use opsd_grpc_proto::google::longrunning::{
    GetOperationRequest, ListOperationsRequest, WaitOperationRequest,
};
use opsd_grpc_proto::google::rpc;
use prost::Message;
use serde_json::json;
use tonic::Code;

use super::{Grpc, error_info, error_of, name_of};
use crate::support::{TestServer, new_op, unique_project};

#[tokio::test]
async fn a_failed_operations_error_follows_the_mapping_table() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;
    let table: &[(Option<u16>, i32)] = &[
        (None, 2),
        (Some(400), 3),
        (Some(401), 16),
        (Some(403), 7),
        (Some(404), 5),
        (Some(409), 10),
        (Some(412), 9),
        (Some(429), 8),
        (Some(499), 1),
        (Some(501), 12),
        (Some(503), 14),
        (Some(504), 4),
        (Some(422), 9),
        (Some(502), 13),
    ];
    for (http, code) in table {
        let op = c.create(&new_op(&p)).await;
        let mut patch = json!({"status": "failed", "error": {"errors": [
            {"code": "QUOTA", "message": "no cpu left", "location": "cpu"},
            {"code": "ALSO", "message": "and no memory"},
        ]}});
        if let Some(h) = http {
            patch["http_error_status_code"] = json!(h);
        }
        c.patch(&op, &patch).await;
        let got = grpc.get(&name_of(&op)).await.unwrap();
        assert!(got.done);
        let e = error_of(&got);
        assert_eq!(e.code, *code, "http {http:?}");
        assert_eq!(e.message, "no cpu left");
        let infos: Vec<rpc::ErrorInfo> = e
            .details
            .iter()
            .map(|d| {
                assert_eq!(d.type_url, "type.googleapis.com/google.rpc.ErrorInfo");
                rpc::ErrorInfo::decode(d.value.as_slice()).unwrap()
            })
            .collect();
        assert_eq!(infos.len(), 2);
        assert_eq!(
            (infos[0].reason.as_str(), infos[0].domain.as_str()),
            ("QUOTA", "opsd")
        );
        assert_eq!(infos[0].metadata["message"], "no cpu left");
        assert_eq!(infos[0].metadata["location"], "cpu");
        assert_eq!(infos[1].reason, "ALSO");
        assert!(!infos[1].metadata.contains_key("location"));
    }
}

#[tokio::test]
async fn bad_requests_get_the_proper_status_naming_what_is_wrong() {
    let server = TestServer::start().await;
    let p = unique_project();
    let grpc = Grpc::with_role(&server, Role::Admin, &["*"]).await;

    let e = grpc.get("operations/42").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(error_info(&e).metadata["field"], "name");
    assert_eq!(error_info(&e).reason, "invalid_argument");
    let missing = format!("projects/{p}/operations/{}", uuid::Uuid::now_v7());
    let e = grpc.get(&missing).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(!error_info(&e).metadata["request_id"].is_empty());

    let list = |filter: &str, page_size: i32| {
        let mut ops = grpc.ops();
        let r = grpc.req(ListOperationsRequest {
            name: format!("projects/{p}"),
            filter: filter.into(),
            page_size,
            ..Default::default()
        });
        async move { ops.list_operations(r).await }
    };
    let e = list("metadata.progress > 5", 0).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("'metadata.progress'"), "{e:?}");
    assert_eq!(error_info(&e).metadata["field"], "filter");
    let e = list("done = true OR done = false", 0).await.unwrap_err();
    assert!(e.message().contains("'OR'"), "{e:?}");
    let e = list("", -1).await.unwrap_err();
    assert_eq!(error_info(&e).metadata["field"], "page_size");
    assert!(
        list("", 100_000).await.is_ok(),
        "a page size above 500 is lowered, not refused"
    );

    let e = grpc
        .ops()
        .wait_operation(grpc.req(WaitOperationRequest {
            name: missing.clone(),
            timeout: Some(prost_types::Duration {
                seconds: -1,
                nanos: 0,
            }),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(error_info(&e).metadata["field"], "timeout");

    // A message over the body limit (1 MiB).
    let e = grpc
        .ops()
        .get_operation(grpc.req(GetOperationRequest {
            name: "x".repeat(2 << 20),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
}

/// Calls no method answers, and bytes that are no message: statuses, never a panic.
#[tokio::test]
async fn unknown_methods_and_malformed_messages() {
    let server = TestServer::start().await;
    let grpc = Grpc::with_role(&server, Role::Admin, &["*"]).await;
    let mut raw = tonic::client::Grpc::new(grpc.channel());
    for path in [
        "/google.longrunning.Operations/ExplodeOperation",
        "/opsd.v1.Nothing/Here",
    ] {
        raw.ready().await.unwrap();
        let e = raw
            .unary::<_, (), _>(
                grpc.req(()),
                path.parse().unwrap(),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented, "{path}: {e:?}");
    }
    // Field 1 (name) as a varint: not a string. Sent as raw bytes.
    raw.ready().await.unwrap();
    let e = raw
        .unary::<_, (), _>(
            grpc.req(RawBytes(vec![0x08, 0x01, 0xff])),
            "/google.longrunning.Operations/GetOperation"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), Code::Internal | Code::InvalidArgument),
        "{e:?}"
    );
    // The server is still there.
    let ok = grpc
        .get(&format!("projects/p/operations/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(ok.unwrap_err().code(), Code::NotFound);
}

/// The server enforces the caller's `grpc-timeout` (sent here with a bare HTTP/2
/// client: tonic's own client would give up first, on its side).
#[tokio::test]
async fn a_call_past_its_deadline_is_deadline_exceeded() {
    let server = TestServer::start().await;
    let (mut sender, request) = bare_wait(&server, Duration::from_secs(60), "300m").await;
    let started = std::time::Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .expect("answered long before the wait's 60 s")
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "4", "{response:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A wait's answer ends with its status in the trailers, like every call's. Waits are
/// long-lived requests, whose bodies once went through a wrapper that passed data only:
/// lenient clients read the message and assumed OK, strict ones (tonic 0.14, and the
/// gRPC specification) reported "missing grpc-status trailer".
#[tokio::test]
async fn a_wait_answer_carries_its_status_in_the_trailers() {
    use http_body_util::BodyExt;
    let server = TestServer::start().await;
    let (mut sender, request) = bare_wait(&server, Duration::from_millis(100), "60S").await;
    let response = sender.send_request(request).await.unwrap();
    assert!(
        response.headers().get("grpc-status").is_none(),
        "{response:?}"
    );
    let mut body = response.into_body();
    let (mut messages, mut trailers) = (0, None);
    while let Some(frame) = body.frame().await {
        match frame.unwrap().into_trailers() {
            Ok(t) => trailers = Some(t),
            Err(data) => messages += usize::from(data.data_ref().is_some_and(|d| !d.is_empty())),
        }
    }
    assert_eq!(messages, 1);
    let trailers = trailers.expect("the answer has trailers");
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
}

/// A reader's `WaitOperation` on a new operation of its project, as a bare HTTP/2
/// request (with `grpc_timeout`, in the header's own notation), and the connection to
/// send it on.
async fn bare_wait(
    server: &TestServer,
    wait: Duration,
    grpc_timeout: &str,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Full<prost::bytes::Bytes>>,
    hyper::Request<http_body_util::Full<prost::bytes::Bytes>>,
) {
    let p = unique_project();
    let key = crate::support::TestClient::mint_key(&server.store, Role::Reader, &[&p]).await;
    let op = server.client.create(&new_op(&p)).await;
    let message = WaitOperationRequest {
        name: name_of(&op),
        timeout: Some(prost_types::Duration {
            seconds: i64::try_from(wait.as_secs()).unwrap(),
            nanos: i32::try_from(wait.subsec_nanos()).unwrap(),
        }),
    }
    .encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&message);
    let (sender, addr) = crate::support::http2_connection(&server.client).await;
    let request = hyper::Request::post(format!(
        "http://{addr}/google.longrunning.Operations/WaitOperation"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("grpc-timeout", grpc_timeout)
    .header("authorization", format!("Bearer {key}"))
    .body(http_body_util::Full::new(prost::bytes::Bytes::from(framed)))
    .unwrap();
    (sender, request)
}

/// Bytes sent as they are, for messages no generated type would encode.
#[derive(Clone, Debug, Default, PartialEq)]
struct RawBytes(Vec<u8>);

impl Message for RawBytes {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        _: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, 0, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

#[tokio::test]
async fn a_read_only_server_answers_grpc_reads_and_refuses_cancel_and_delete() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let grpc = Grpc::with_role(&server, Role::Admin, &["*"]).await;
    let op = c.create(&new_op(&p)).await;
    c.send(
        c.request(reqwest::Method::PUT, "/v1/admin/read_only")
            .json(&json!({"read_only": true})),
        reqwest::StatusCode::OK,
    )
    .await;

    // Every gRPC call is an HTTP POST; reads must not be taken for writes.
    assert!(!grpc.get(&name_of(&op)).await.unwrap().done);
    let mut ops = grpc.ops();
    let listed = ops
        .list_operations(grpc.req(ListOperationsRequest {
            name: format!("projects/{p}"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.operations.len(), 1);

    let cancel = ops
        .cancel_operation(grpc.req(
            opsd_grpc_proto::google::longrunning::CancelOperationRequest { name: name_of(&op) },
        ))
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Code::Unavailable, "{cancel:?}");
    assert_eq!(error_info(&cancel).reason, "read_only");
    assert!(
        super::retry_delay(&cancel).is_some(),
        "retryable, with a delay"
    );
    let delete = ops
        .delete_operation(grpc.req(
            opsd_grpc_proto::google::longrunning::DeleteOperationRequest { name: name_of(&op) },
        ))
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::Unavailable, "{delete:?}");
    // Nothing changed.
    let path = format!("/v1/operations/{}", op["id"].as_str().unwrap());
    assert_eq!(
        c.get(&path, reqwest::StatusCode::OK).await["status"],
        "pending"
    );
}
