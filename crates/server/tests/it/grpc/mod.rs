//! `google.longrunning.Operations` over gRPC, with tonic's client, against the same
//! server and store as the REST tests (the backend is `OPSD_TEST_STORE`'s).

mod auth;
mod errors;
mod methods;
mod protocol;

use std::time::Duration;

use opsd_domain::Role;
use opsd_grpc_proto::google::longrunning::operations_client::OperationsClient;
use opsd_grpc_proto::google::longrunning::{GetOperationRequest, Operation, operation};
use opsd_grpc_proto::google::rpc;
use opsd_grpc_proto::opsd::v1::OperationMetadata;
use prost::Message;
use serde_json::Value;
use tonic::transport::Channel;

use crate::support::{TestClient, TestServer, id_of};

/// A gRPC client of one server, sending `key` (if any) as a bearer token.
pub struct Grpc {
    channel: Channel,
    key: Option<String>,
}

impl Grpc {
    /// Connects to `server` over h2c.
    pub async fn connect(server: &TestServer, key: Option<&str>) -> Self {
        let channel = tonic::transport::Endpoint::from_shared(server.client.base().to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap();
        Grpc {
            channel,
            key: key.map(str::to_owned),
        }
    }

    /// Connects with a fresh key of `role` over `projects`.
    pub async fn with_role(server: &TestServer, role: Role, projects: &[&str]) -> Self {
        let key = TestClient::mint_key(&server.store, role, projects).await;
        Self::connect(server, Some(&key)).await
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn ops(&self) -> OperationsClient<Channel> {
        OperationsClient::new(self.channel.clone())
    }

    /// `message` with the key attached.
    pub fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.set_timeout(Duration::from_secs(60));
        if let Some(key) = &self.key {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        r
    }

    /// `GetOperation` of `name`.
    pub async fn get(&self, name: &str) -> Result<Operation, tonic::Status> {
        self.ops()
            .get_operation(self.req(GetOperationRequest { name: name.into() }))
            .await
            .map(tonic::Response::into_inner)
    }
}

/// The gRPC name of an operation returned by the REST API.
pub fn name_of(op: &Value) -> String {
    format!(
        "projects/{}/operations/{}",
        op["project_id"].as_str().unwrap(),
        id_of(op)
    )
}

/// The `opsd.v1.OperationMetadata` packed in `op`.
pub fn metadata(op: &Operation) -> OperationMetadata {
    let any = op.metadata.as_ref().expect("metadata");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/opsd.v1.OperationMetadata"
    );
    OperationMetadata::decode(any.value.as_slice()).unwrap()
}

/// The error of a failed operation.
pub fn error_of(op: &Operation) -> &rpc::Status {
    match &op.result {
        Some(operation::Result::Error(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The `google.rpc.Status` in a call's `grpc-status-details-bin`.
pub fn details_of(status: &tonic::Status) -> rpc::Status {
    rpc::Status::decode(status.details()).unwrap()
}

/// The `ErrorInfo` of a call's status details.
pub fn error_info(status: &tonic::Status) -> rpc::ErrorInfo {
    let details = details_of(status);
    let any = details
        .details
        .iter()
        .find(|d| d.type_url.ends_with("google.rpc.ErrorInfo"))
        .expect("an ErrorInfo");
    rpc::ErrorInfo::decode(any.value.as_slice()).unwrap()
}

/// The retry delay of a call's status details, if it has one.
pub fn retry_delay(status: &tonic::Status) -> Option<prost_types::Duration> {
    details_of(status)
        .details
        .iter()
        .find(|d| d.type_url.ends_with("google.rpc.RetryInfo"))
        .map(|any| rpc::RetryInfo::decode(any.value.as_slice()).unwrap())
        .and_then(|r| r.retry_delay)
}
