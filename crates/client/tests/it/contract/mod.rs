//! The SDK's wire types agree with the server's published OpenAPI document (the one
//! `GET /openapi.json` serves). The SDK declares its own wire types, since it must not
//! depend on the server; this is what keeps the two declarations from drifting.
//!
//! For every body the SDK sends or reads, at the endpoint it uses: its JSON property
//! names are the schema's, the properties it cannot do without are the schema's
//! `required`, and the enum values it uses are among the schema's; the SDK's enums have
//! exactly the schema's values, and the list and watch queries exactly the endpoint's
//! query parameters. Property names come from the types themselves (a fully populated
//! value serialized, or the body or URL the SDK actually sent to a stub), and what the
//! SDK cannot do without from what it refuses to read, so neither is a list to keep up
//! to date by hand. Only the deliberate differences are listed, in [`KNOWN`], and a
//! difference that goes away must leave that list too.

mod samples;
mod schema;

use std::collections::BTreeSet;

use futures_util::StreamExt;
use opsd_client::{
    ClaimRequest, CreatedKey, Kind, Lease, ListQuery, NewOperation, OpType, Operation,
    OperationPatch, Page, Pagination, Renewed, Role, Status, WatchQuery,
};
use serde_json::Value;
use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

use samples::{api_key, details, event, operation, operation_error, warning};
use schema::{
    Contract, body, needed_by_call, query_names, request, response, sent, strings, wire_names,
};

/// Where the SDK and the schema differ on purpose.
const KNOWN: &[&str] = &[
    // The SDK reads answers of servers that predate these fields, defaulting them.
    "OperationOut.details: required by the schema, the SDK does without it",
    "OperationOut.progress: required by the schema, the SDK does without it",
    // The SDK sends the expected version as `If-Match`, which the server also takes.
    "OperationPatch.expected_version: in the schema only",
];

#[tokio::test]
async fn the_sdks_wire_types_agree_with_the_published_schema() {
    let doc = serde_json::to_value(opsd_server::http::openapi::document()).unwrap();
    let mut c = Contract {
        doc: &doc,
        problems: BTreeSet::new(),
    };
    let op = "/v1/operations/{operation_id}";

    // What the SDK reads.
    c.read::<Operation>(response(&doc, "get", op, "200"), &operation());
    c.read::<Operation>(
        response(&doc, "post", "/v1/operations", "201"),
        &operation(),
    );
    c.read::<Operation>(response(&doc, "patch", op, "200"), &operation());
    c.read::<Operation>(
        response(&doc, "post", &format!("{op}/cancel"), "200"),
        &operation(),
    );
    c.read::<Operation>(
        response(&doc, "get", &format!("{op}/wait"), "200"),
        &operation(),
    );
    let page = Page {
        items: vec![operation()],
        pagination: Pagination {
            next_cursor: Some("next".into()),
            previous_cursor: Some("previous".into()),
            total_count: 3,
        },
    };
    c.read::<Page>(response(&doc, "get", "/v1/operations", "200"), &page);
    let lease = Lease {
        operation: operation(),
        lease_token: "token".into(),
        lease_expires_at: datetime!(2026-01-01 0:01 UTC),
    };
    c.read::<Lease>(
        response(&doc, "post", "/v1/operations/claim", "200"),
        &lease,
    );
    let renewed = Renewed {
        operation: operation(),
        lease_expires_at: datetime!(2026-01-01 0:02 UTC),
    };
    let heartbeat = format!("{op}/heartbeat");
    c.read::<Renewed>(response(&doc, "post", &heartbeat, "200"), &renewed);
    let created = CreatedKey {
        key: api_key(),
        key_secret: "opsd_secret".into(),
    };
    c.read::<CreatedKey>(response(&doc, "post", "/v1/api_keys", "201"), &created);

    // The answers the SDK unwraps: what it needs is what makes the call fail without it.
    let events = json!({ "items": [event()] });
    let needed = needed_by_call(&events, |client| async move {
        client.events(Uuid::nil()).await.map(|e| e == [event()])
    })
    .await;
    c.walk(
        response(&doc, "get", &format!("{op}/events"), "200"),
        &events,
        &needed,
        true,
    );
    let keys = json!({ "items": [api_key()] });
    let needed = needed_by_call(&keys, |client| async move {
        client.list_keys().await.map(|k| k == [api_key()])
    })
    .await;
    c.walk(
        response(&doc, "get", "/v1/api_keys", "200"),
        &keys,
        &needed,
        true,
    );
    let read_only = json!({ "read_only": true });
    let needed = needed_by_call(&read_only, |client| async move {
        client.set_read_only(false).await
    })
    .await;
    let read_only_path = "/v1/admin/read_only";
    c.walk(
        response(&doc, "put", read_only_path, "200"),
        &read_only,
        &needed,
        true,
    );

    // What the SDK sends: everything it can, and what it sends when told nothing more.
    let new = NewOperation {
        details: Some(details()),
        user: Some("someone".into()),
        region: Some("eu".into()),
        zone: Some("eu-1".into()),
        target_link: Some("https://example.com/vm-1".into()),
        ..NewOperation::new("p", Kind::Vm, OpType::Update, "vm-1")
            .request_id("r-1")
            .description("resize")
    };
    let minimal = NewOperation::new("p", Kind::Vm, OpType::Update, "vm-1");
    c.write(request(&doc, "post", "/v1/operations"), &new, &minimal);
    let patch = OperationPatch {
        status: Some(Status::Failed),
        progress: Some(50),
        status_message: Some("half".into()),
        error: Some(operation_error()),
        warnings: Some(vec![warning()]),
        http_error_status_code: Some(500),
        http_error_message: Some("boom".into()),
        lease_token: Some("token".into()),
    };
    c.write(
        request(&doc, "patch", op),
        &patch,
        &OperationPatch::default(),
    );
    let claim = ClaimRequest {
        project_id: Some("p".into()),
        kinds: vec![Kind::Vm],
        statuses: vec![Status::Pending, Status::Unknown],
        lease_seconds: 30,
        worker: "w".into(),
    };
    let minimal = ClaimRequest {
        project_id: None,
        kinds: vec![],
        statuses: vec![],
        ..claim.clone()
    };
    c.write(
        request(&doc, "post", "/v1/operations/claim"),
        &claim,
        &minimal,
    );
    let (full, minimal) = (
        sent(|client| async move {
            client
                .heartbeat(Uuid::nil(), "token", Some(5), Some("busy"))
                .await
        })
        .await,
        sent(|client| async move { client.heartbeat(Uuid::nil(), "token", None, None).await })
            .await,
    );
    c.write(
        request(&doc, "post", &heartbeat),
        &body(&full),
        &body(&minimal),
    );
    let key = sent(|client| async move {
        client
            .create_key("k", Role::Producer, &["p".to_owned()])
            .await
    })
    .await;
    c.write(
        request(&doc, "post", "/v1/api_keys"),
        &body(&key),
        &body(&key),
    );
    let read_only = sent(|client| async move { client.set_read_only(true).await }).await;
    let read_only = body(&read_only);
    c.write(request(&doc, "put", read_only_path), &read_only, &read_only);

    let mut problems: Vec<String> = c.problems.into_iter().collect();
    problems.extend(enum_problems(&doc));
    problems.extend(query_problems(&doc).await);
    let stale: Vec<_> = KNOWN
        .iter()
        .filter(|k| !problems.iter().any(|p| p == *k))
        .collect();
    problems.retain(|p| !KNOWN.contains(&p.as_str()));
    assert!(
        problems.is_empty() && stale.is_empty(),
        "the SDK and the OpenAPI document disagree:\n  {}\nlisted in KNOWN but no longer true: {stale:?}",
        problems.join("\n  "),
    );
}

/// The SDK's enums have exactly the schema's values.
fn enum_problems(doc: &Value) -> Vec<String> {
    // A new role breaks this match, so it cannot be left out of the list below.
    let role = |r: Role| match r {
        Role::Reader | Role::Producer | Role::Admin => r,
    };
    let roles = [Role::Reader, Role::Producer, Role::Admin].map(role);
    let sdk = [
        ("Kind", wire_names(Kind::ALL)),
        ("OpType", wire_names(OpType::ALL)),
        ("Status", wire_names(Status::ALL)),
        ("Role", wire_names(&roles)),
    ];
    let mut problems = Vec::new();
    for (name, sdk) in sdk {
        let schema = strings(&doc["components"]["schemas"][name]["enum"]);
        if sdk != schema {
            problems.push(format!(
                "{name}: the SDK has {sdk:?}, the schema {schema:?}"
            ));
        }
    }
    problems
}

/// The list and watch queries send exactly the parameters their endpoints take, and
/// when told nothing more exactly the required ones.
async fn query_problems(doc: &Value) -> Vec<String> {
    let t = datetime!(2026-01-01 0:00 UTC);
    let list = ListQuery {
        op_type: Some(OpType::Update),
        resource_id: Some("vm-1".into()),
        created_at_min: Some(t),
        created_at_max: Some(t),
        ..ListQuery::new("p")
            .kind(Kind::Vm)
            .status(Status::Done)
            .sort("created_at:asc")
            .limit(5)
    };
    let watch = WatchQuery::new("p")
        .kind(Kind::Vm)
        .status(Status::Done)
        .op_type(OpType::Update)
        .resource_id("vm-1")
        .after(7);
    let list_full = sent(|client| async move { client.list_page(&list, Some("c")).await }).await;
    let list_min =
        sent(|client| async move { client.list_page(&ListQuery::new("p"), None).await }).await;
    let watch_full = sent(|client| first_watched(client, watch)).await;
    let watch_min = sent(|client| first_watched(client, WatchQuery::new("p"))).await;
    let mut problems = Vec::new();
    for (path, full, minimal) in [
        ("/v1/operations", list_full, list_min),
        ("/v1/operations/watch", watch_full, watch_min),
    ] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let query = |required: bool| -> BTreeSet<String> {
            params
                .iter()
                .filter(|p| p["in"] == "query" && (!required || p["required"] == true))
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect()
        };
        for (sent, schema) in [(full, query(false)), (minimal, query(true))] {
            let sent = query_names(&sent);
            if sent != schema {
                problems.push(format!(
                    "GET {path}: the SDK sends {sent:?}, the schema takes {schema:?}"
                ));
            }
        }
    }
    problems
}

async fn first_watched(client: opsd_client::Client, query: WatchQuery) -> opsd_client::Result<()> {
    let mut stream = Box::pin(client.watch(query));
    stream.next().await.unwrap().map(drop)
}
