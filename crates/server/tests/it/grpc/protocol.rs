//! The protocol around the service: health and reflection for standard tools, metrics,
//! and HTTP/2 connections held by idle or slow clients.

use std::time::{Duration, Instant};

use opsd_domain::Role;
use opsd_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_stream_shim::once;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use super::{Grpc, name_of};
use crate::support::{TestServer, new_op, unique_project};

#[tokio::test]
async fn health_and_reflection_answer_without_a_key() {
    let server = TestServer::start().await;
    let grpc = Grpc::connect(&server, None).await;
    let mut health = HealthClient::new(grpc.channel());
    for service in ["", "google.longrunning.Operations"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(grpc.channel());
    let ask = |m: MessageRequest| {
        once(ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        })
    };
    let mut answers = reflection
        .server_reflection_info(ask(MessageRequest::ListServices(String::new())))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"google.longrunning.Operations"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    // The opsd.v1 message is served too.
    let mut answers = reflection
        .server_reflection_info(ask(MessageRequest::FileContainingSymbol(
            "opsd.v1.OperationMetadata".into(),
        )))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap().message_response;
    assert!(
        matches!(answer, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "{answer:?}"
    );
}

#[tokio::test]
async fn calls_are_counted_by_method_and_code() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let op = c.create(&new_op(&p)).await;
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;
    grpc.get(&name_of(&op)).await.unwrap();
    grpc.get(&name_of(&op)).await.unwrap();
    // A wait is a long-lived call: its status, too, is read from its trailers (it was
    // once counted UNKNOWN, its trailers lost on the way).
    let wait = grpc.req(opsd_grpc_proto::google::longrunning::WaitOperationRequest {
        name: name_of(&op),
        timeout: Some(prost_types::Duration {
            seconds: 0,
            nanos: 50_000_000,
        }),
    });
    grpc.ops().wait_operation(wait).await.unwrap();
    let anonymous = Grpc::connect(&server, None).await;
    assert_eq!(
        anonymous.get(&name_of(&op)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let text = c.get_resp("/metrics", reqwest::StatusCode::OK).await.text;
    let value = |series: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    assert_eq!(
        value(
            r#"opsd_grpc_requests_total{method="google.longrunning.Operations/GetOperation",code="OK"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            r#"opsd_grpc_requests_total{method="google.longrunning.Operations/GetOperation",code="UNAUTHENTICATED"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            r#"opsd_grpc_request_duration_seconds_count{method="google.longrunning.Operations/GetOperation"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            r#"opsd_grpc_requests_total{method="google.longrunning.Operations/WaitOperation",code="OK"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

/// True when the server closed `stream` (EOF or reset) within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {} // SETTINGS, GOAWAY: fine before the close
            Err(_) => return false,
        }
    }
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// HTTP/2's slow and idle clients are cut as HTTP/1's are: one that stops inside the
/// preface, one idle after it, one that never finishes a request's head. Real calls
/// are served meanwhile.
#[tokio::test]
async fn idle_and_slow_http2_connections_are_cut() {
    let server = TestServer::start_with(Config {
        header_read_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let addr = server
        .client
        .base()
        .trim_start_matches("http://")
        .to_owned();
    let p = unique_project();
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;

    let mut half_preface = TcpStream::connect(&addr).await.unwrap();
    half_preface.write_all(&PREFACE[..10]).await.unwrap();
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(PREFACE).await.unwrap();
    idle.write_all(SETTINGS).await.unwrap();
    // A HEADERS frame of stream 1 without END_HEADERS, and no CONTINUATION ever.
    let mut slow_head = TcpStream::connect(&addr).await.unwrap();
    slow_head.write_all(PREFACE).await.unwrap();
    slow_head.write_all(SETTINGS).await.unwrap();
    slow_head
        .write_all(&[0, 0, 1, 1, 0x01, 0, 0, 0, 1, 0x82]) // :method GET, END_STREAM only
        .await
        .unwrap();

    let name = format!("projects/{p}/operations/{}", uuid::Uuid::now_v7());
    assert_eq!(grpc.get(&name).await.unwrap_err().code(), Code::NotFound);
    for (what, stream) in [
        ("half a preface", &mut half_preface),
        ("idle after the preface", &mut idle),
        ("an unfinished head", &mut slow_head),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(20)).await,
            "{what}: still open"
        );
    }
    // The client's own connection was idle too; it reconnects and is served.
    assert_eq!(grpc.get(&name).await.unwrap_err().code(), Code::NotFound);
}

/// A request in flight is not idle: a wait longer than the idle limit is answered.
#[tokio::test]
async fn a_long_wait_over_http2_is_not_cut_as_idle() {
    let server = TestServer::start_with(Config {
        header_read_timeout: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let c = &server.client;
    let p = unique_project();
    let op = c.create(&new_op(&p)).await;
    let grpc = Grpc::with_role(&server, Role::Reader, &[&p]).await;
    let started = Instant::now();
    let r = grpc.req(opsd_grpc_proto::google::longrunning::WaitOperationRequest {
        name: name_of(&op),
        timeout: Some(prost_types::Duration {
            seconds: 3,
            nanos: 0,
        }),
    });
    let answer = grpc.ops().wait_operation(r).await.unwrap().into_inner();
    assert!(!answer.done);
    assert!(started.elapsed() >= Duration::from_secs(3));
}

/// `tokio_stream::once` without the dependency: a one-item stream.
mod tokio_stream_shim {
    pub fn once<T>(item: T) -> futures_util::stream::Once<std::future::Ready<T>> {
        futures_util::stream::once(std::future::ready(item))
    }
}
