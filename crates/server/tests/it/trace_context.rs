//! The W3C trace context of the creating request, with export off (the default): kept
//! with the operation, shown as `trace_context` in the Nirvana dialect and the producer
//! API and stated in the OpenAPI document; not in the Google dialect.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestServer, new_op, op_path, unique_project};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn the_creating_requests_context_is_shown_in_nirvana_not_in_google() {
    let server = TestServer::start().await;
    let c = &server.client;
    let project = unique_project();
    let request = c
        .request(Method::POST, "/v1/operations")
        .header("traceparent", PARENT)
        .header("tracestate", "vendor=x")
        .json(&new_op(&project));
    let op = c.send(request, StatusCode::CREATED).await.json();
    let expected = json!({"traceparent": PARENT, "tracestate": "vendor=x"});
    assert_eq!(op["trace_context"], expected);
    let read = c.get(&op_path(&op), StatusCode::OK).await;
    assert_eq!(read["trace_context"], expected);
    let id = op["id"].as_str().unwrap();
    let google = c
        .get(
            &format!("/deploymentmanager/v2/projects/{project}/global/operations/operation-{id}"),
            StatusCode::OK,
        )
        .await;
    assert!(
        !google
            .to_string()
            .contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "{google}"
    );

    // None sent, or one that is not a W3C traceparent: no trace_context, no refusal.
    let plain = c.create(&new_op(&project)).await;
    assert!(plain.get("trace_context").is_none(), "{plain}");
    let request = c
        .request(Method::POST, "/v1/operations")
        .header(
            "traceparent",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        )
        .json(&new_op(&project));
    let bad = c.send(request, StatusCode::CREATED).await.json();
    assert!(bad.get("trace_context").is_none(), "{bad}");
}

#[tokio::test]
async fn the_document_states_the_trace_context() {
    let server = TestServer::start().await;
    let doc = server.client.get("/openapi.json", StatusCode::OK).await;
    let schemas = &doc["components"]["schemas"];
    // Optional like `error`: a reference to TraceContext, not among the required.
    let field = &schemas["OperationOut"]["properties"]["trace_context"];
    assert!(
        field
            .to_string()
            .contains("\"#/components/schemas/TraceContext\""),
        "{field}"
    );
    let required = schemas["OperationOut"]["required"].as_array().unwrap();
    assert!(!required.contains(&json!("trace_context")), "{required:?}");
    let trace = &schemas["TraceContext"];
    assert_eq!(
        trace["properties"]["traceparent"]["type"], "string",
        "{trace}"
    );
    assert_eq!(trace["required"], json!(["traceparent"]), "{trace}");
}
