//! The published OpenAPI document against what the server does: enum values, security,
//! documented statuses, and the server-side decisions the document states (integers
//! written `326.0`, authorization before validation, one Authorization header, Google's
//! opaque names, `request_id` in every error body).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestClient, TestServer, new_op, op_path, unique_project};

async fn document(c: &TestClient) -> Value {
    c.get("/openapi.json", StatusCode::OK).await
}

fn enum_values(doc: &Value, schema: &str) -> Vec<String> {
    doc["components"]["schemas"][schema]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{schema} has no enum"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_enum_value_in_the_document_is_accepted_by_the_server() {
    let server = TestServer::start().await;
    let c = &server.client;
    let doc = document(c).await;
    let p = unique_project();
    let kinds = enum_values(&doc, "Kind");
    let types = enum_values(&doc, "OpType");
    assert!(kinds.contains(&"vm".to_owned()), "{kinds:?}");
    for (i, kind) in kinds.iter().enumerate() {
        let op_type = &types[i % types.len()];
        let mut body = new_op(&p);
        body["kind"] = json!(kind);
        body["type"] = json!(op_type);
        let op = c.create(&body).await;
        assert_eq!((&op["kind"], &op["type"]), (&json!(kind), &json!(op_type)));
    }
    for status in enum_values(&doc, "Status") {
        c.list(&[("project_id", &p), ("status", &status)], StatusCode::OK)
            .await;
    }
    for role in enum_values(&doc, "Role") {
        let key = json!({"name": format!("k-{role}"), "role": role, "projects": [p]});
        c.post_json("/v1/api_keys", &key, StatusCode::CREATED).await;
    }
}

#[tokio::test]
async fn the_document_states_security_ids_and_shared_statuses() {
    let server = TestServer::start().await;
    let doc = document(&server.client).await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        (&schemes["googleKey"]["in"], &schemes["googleKey"]["name"]),
        (&json!("query"), &json!("key"))
    );
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            // Probes, and the docs page (a signed-out browser is sent to sign in).
            let public = matches!(path.as_str(), "/healthz" | "/readyz" | "/docs");
            assert_eq!(op["security"] == json!([]), public, "{method} {path}");
            let responses = &op["responses"];
            for status in ["401", "429"] {
                assert_eq!(
                    responses.get(status).is_some(),
                    !public,
                    "{method} {path} {status}"
                );
            }
            assert!(
                public || responses.get("503").is_some(),
                "{method} {path} 503"
            );
            for (status, r) in responses.as_object().unwrap() {
                assert!(
                    r["headers"].get("x-request-id").is_some(),
                    "{path} {status}"
                );
            }
        }
    }
    for path in ["/openapi.json", "/docs"] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    let google = &doc["paths"]["/deploymentmanager/v2/projects/{project}/global/operations/{operation}"]
        ["get"];
    assert_eq!(
        google["responses"]["404"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/GoogleErrorBody"
    );
    let names: Vec<_> = google["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for standard in ["fields", "alt", "prettyPrint", "quotaUser"] {
        assert!(names.contains(&standard), "{standard} missing: {names:?}");
    }
    let required = &doc["components"]["schemas"]["ErrorBody"]["required"];
    assert!(required.as_array().unwrap().contains(&json!("request_id")));
}

#[tokio::test]
async fn integers_written_with_a_zero_fraction_are_integers() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let patched = c
        .patch_json(
            &op_path(&op),
            &json!({"status": "running", "progress": 30.0, "expected_version": 1.0}),
            &[],
            StatusCode::OK,
        )
        .await;
    assert_eq!(patched["progress"], 30);
    c.patch_resp(
        &op_path(&op),
        &json!({"progress": 40.5}),
        &[],
        StatusCode::BAD_REQUEST,
    )
    .await
    .assert_error("invalid_argument", Some("progress"));
}

#[tokio::test]
async fn a_readers_write_is_refused_for_its_role_before_its_body_is_read() {
    let server = TestServer::start().await;
    let p = unique_project();
    let reader = TestClient::mint_key(&server.store, opsd_domain::Role::Reader, &[&p]).await;
    let r = server.client.with_key(Some(&reader));
    let op = server.client.create(&new_op(&p)).await;
    let malformed = json!({"project_id": "no spaces allowed", "kind": "nope"});
    r.post_resp("/v1/operations", &malformed, StatusCode::FORBIDDEN)
        .await
        .assert_error("permission_denied", None);
    r.patch_resp(&op_path(&op), &malformed, &[], StatusCode::FORBIDDEN)
        .await
        .assert_error("permission_denied", None);
    r.post_resp("/v1/operations/claim", &malformed, StatusCode::FORBIDDEN)
        .await
        .assert_error("permission_denied", None);
    r.post_resp("/v1/api_keys", &malformed, StatusCode::FORBIDDEN)
        .await
        .assert_error("permission_denied", None);
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let server = TestServer::start().await;
    let none = server.client.with_key(None);
    let good = TestClient::mint_key(&server.store, opsd_domain::Role::Admin, &["*"]).await;
    let request = none
        .request(Method::GET, "/v1/api_keys")
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {good}"));
    let resp = none.send(request, StatusCode::UNAUTHORIZED).await;
    resp.assert_error("unauthenticated", None);
    assert!(resp.header("www-authenticate").starts_with("Bearer"));
}

#[tokio::test]
async fn google_names_are_opaque_unknown_ones_are_not_found() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let base = format!("/deploymentmanager/v2/projects/{p}/global/operations");
    for name in [
        "operation-does-not-exist",
        "op1",
        "operation-1700000000000-abc",
    ] {
        let body = c
            .get(&format!("{base}/{name}"), StatusCode::NOT_FOUND)
            .await;
        assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
        let wait = c.request(Method::POST, &format!("{base}/{name}/wait"));
        c.send(wait, StatusCode::NOT_FOUND).await;
    }
    // What cannot be a name at all is still a 400 naming `operation`.
    let body = c
        .get(&format!("{base}/bad%20name"), StatusCode::BAD_REQUEST)
        .await;
    assert_eq!(body["error"]["errors"][0]["location"], "operation");
}

#[tokio::test]
async fn every_error_body_carries_the_request_id() {
    let server = TestServer::start().await;
    let c = &server.client;
    let resp = c
        .get_resp("/v1/operations/not-a-uuid", StatusCode::BAD_REQUEST)
        .await;
    let body = resp.json();
    assert_eq!(body["request_id"], resp.header("x-request-id"));
    assert!(!body["request_id"].as_str().unwrap().is_empty());
}

/// The admin endpoints are in the document with what they answer: the backup's file
/// type and summary headers, 409 `not_supported_for_backend` on PostgreSQL; and what the
/// server answers is one of the documented statuses with the documented content type.
#[tokio::test]
async fn the_admin_backup_is_documented_as_it_answers() {
    let server = TestServer::start().await;
    let c = &server.client;
    let doc = document(c).await;
    let backup = &doc["paths"]["/v1/admin/backup"]["post"];
    assert_eq!(backup["operationId"], "backupStore");
    let responses = &backup["responses"];
    for status in ["200", "403", "409"] {
        assert!(
            responses.get(status).is_some(),
            "{status} undocumented: {responses}"
        );
    }
    assert!(
        responses["200"]["content"]
            .get("application/vnd.sqlite3")
            .is_some()
    );
    assert!(
        responses["200"]["headers"]
            .get("x-opsd-backup-sha256")
            .is_some()
    );
    for method in ["get", "put"] {
        assert!(doc["paths"]["/v1/admin/read_only"].get(method).is_some());
    }
    let response = c
        .request(Method::POST, "/v1/admin/backup")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16().to_string();
    let documented = &responses[&status];
    assert!(documented.is_object(), "{status} undocumented");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        documented["content"].get(&content_type).is_some(),
        "{content_type} not documented for {status}: {documented}"
    );
}
