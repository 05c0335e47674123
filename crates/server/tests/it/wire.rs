//! The exact JSON the official Nirvana SDKs decode (seed 000): field names, JSON types,
//! enum spellings, diff values that round-trip unchanged, and the list envelope with its
//! null cursors present rather than omitted.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, new_op, op_path, time_of, unique_project};

/// The seed's `Operation` fields; none may be renamed, dropped or retyped.
const SEED_FIELDS: [&str; 9] = [
    "created_at",
    "details",
    "id",
    "kind",
    "project_id",
    "resource_id",
    "status",
    "type",
    "updated_at",
];

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// Asserts that `op` is a seed `Operation` with the right JSON types and enum values.
fn assert_seed_operation(op: &Value) {
    for field in SEED_FIELDS {
        assert!(op.get(field).is_some(), "{field} missing from {op}");
    }
    let id = op["id"].as_str().expect("id is a string");
    assert_eq!(
        uuid::Uuid::parse_str(id).unwrap().get_version_num(),
        7,
        "{id}"
    );
    for field in ["created_at", "updated_at"] {
        let s = op[field].as_str().unwrap();
        assert!(s.ends_with('Z'), "{field}={s} is not UTC");
        time_of(op, field);
    }
    assert!(op["details"]["changes"].is_object(), "{op}");
    let one_of = |field: &str, allowed: &[&str]| {
        let v = op[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} not a string"));
        assert!(allowed.contains(&v), "{field}={v}");
    };
    let kinds = [
        "vm",
        "volume",
        "vpc",
        "firewall_rule",
        "nks_cluster",
        "nks_node_pool",
    ];
    one_of("kind", &kinds);
    one_of(
        "status",
        &["pending", "running", "done", "failed", "unknown"],
    );
    one_of("type", &["create", "update", "delete", "restart"]);
    assert!(op["project_id"].is_string() && op["resource_id"].is_string());
}

#[tokio::test]
async fn an_operation_has_exactly_the_seed_fields_plus_version_progress_and_user() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let resp = c.get_resp(&op_path(&op), StatusCode::OK).await;
    assert!(resp.header("content-type").starts_with("application/json"));
    let got = resp.json();
    assert_seed_operation(&got);
    let mut expected = SEED_FIELDS.to_vec();
    // `user` defaults to the name of the key that created the operation.
    expected.extend(["progress", "version", "user"]);
    expected.sort_unstable();
    // Absent optional fields are omitted, not null.
    assert_eq!(keys(&got), expected);
    assert!(got["version"].is_u64() && got["progress"].is_u64());
}

#[tokio::test]
async fn a_settled_operation_keeps_the_seed_shape() {
    let server = TestServer::start().await;
    let c = &server.client;
    let op = c.create(&new_op(&unique_project())).await;
    let error = json!({"errors": [{"code": "E", "message": "m"}]});
    c.patch(&op, &json!({"status": "failed", "error": error}))
        .await;
    let got = c.get(&op_path(&op), StatusCode::OK).await;
    assert_seed_operation(&got);
    assert_eq!(got["status"], "failed");
    assert!(got["ended_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn diff_values_round_trip_exactly() {
    let server = TestServer::start().await;
    let c = &server.client;
    let changes = json!({
        "cpu": {"from": 2, "to": 4},
        "ratio": {"from": 0.5, "to": 2.5},
        "offset": {"from": -3, "to": 0},
        "big": {"from": 10_000_000_000_i64, "to": 18_446_744_073_709_551_615_u64},
        "enabled": {"from": false, "to": true},
        "name": {"from": "", "to": "s \"quoted\" ünïcode"},
        "tags": {"from": [], "to": ["a", "b"]},
        "mixed": {"from": "none", "to": ["x"]},
    });
    let mut body = new_op(&unique_project());
    body["details"] = json!({"changes": changes});
    let created = c.create(&body).await;
    let resp = c.get_resp(&op_path(&created), StatusCode::OK).await;
    let got = resp.json();
    // serde_json tells 4 from 4.0, so equality checks the spelling of every number.
    assert_eq!(got["details"]["changes"], changes);
    assert_eq!(created["details"], got["details"]);
    assert!(got["details"]["changes"]["cpu"]["to"].is_u64());
    for raw in [
        r#""cpu":{"from":2,"to":4}"#,
        r#""ratio":{"from":0.5,"to":2.5}"#,
    ] {
        assert!(resp.text.contains(raw), "{raw} not in {}", resp.text);
    }
}

#[tokio::test]
async fn details_default_to_empty_changes() {
    let server = TestServer::start().await;
    let c = &server.client;
    let mut body = new_op(&unique_project());
    body.as_object_mut().unwrap().remove("details");
    let op = c.create(&body).await;
    assert_eq!(op["details"], json!({"changes": {}}));
    body["details"] = json!({});
    body["resource_id"] = json!("vm-2");
    assert_eq!(c.create(&body).await["details"], json!({"changes": {}}));
}

#[tokio::test]
async fn a_list_is_items_and_pagination_with_null_cursors_present() {
    let server = TestServer::start().await;
    let c = &server.client;
    let p = unique_project();
    let op = c.create(&new_op(&p)).await;
    let resp = c.list(&[("project_id", &p)], StatusCode::OK).await;
    assert!(resp.header("content-type").starts_with("application/json"));
    let list = resp.json();
    assert_eq!(keys(&list), ["items", "pagination"]);
    assert_eq!(
        list["pagination"],
        json!({"next_cursor": null, "previous_cursor": null, "total_count": 1})
    );
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_seed_operation(&items[0]);
    assert_eq!(items[0], op);

    let empty = c
        .list(&[("project_id", &unique_project())], StatusCode::OK)
        .await
        .json();
    assert_eq!(
        empty,
        json!({"items": [], "pagination":
            {"next_cursor": null, "previous_cursor": null, "total_count": 0}})
    );
}

#[tokio::test]
async fn an_error_body_is_code_message_field_request_id() {
    let server = TestServer::start().await;
    let resp = server
        .client
        .get_resp("/v1/operations/nope", StatusCode::BAD_REQUEST)
        .await;
    let body = resp.assert_error("invalid_argument", Some("operation_id"));
    assert_eq!(keys(&body), ["code", "field", "message", "request_id"]);
    let not_found = server
        .client
        .get_resp(
            "/v1/operations/0190d6e4-8c3a-7000-8000-000000000000",
            StatusCode::NOT_FOUND,
        )
        .await
        .assert_error("not_found", None);
    // `field` is optional and omitted when there is none.
    assert_eq!(keys(&not_found), ["code", "message", "request_id"]);
}
