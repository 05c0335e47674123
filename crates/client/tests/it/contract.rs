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

use std::collections::BTreeSet;
use std::future::Future;

use futures_util::StreamExt;
use opsd_client::{
    ApiKey, ClaimRequest, CreatedKey, Details, ErrorItem, Event, FieldDiff, Kind, Lease, ListQuery,
    NewOperation, OpType, Operation, OperationError, OperationPatch, Page, Pagination, Renewed,
    Role, Status, TraceContext, WatchQuery,
};
use opsd_domain::{DiffValue, Warning, WarningData};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::macros::datetime;
use uuid::Uuid;

use crate::stub::{Reply, Stub};
use crate::support::client_for;

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

/// Compares values the SDK sends or reads with the schemas the document gives for them.
struct Contract<'a> {
    doc: &'a Value,
    problems: BTreeSet<String>,
}

impl Contract<'_> {
    /// `full`, a value of a type the SDK reads with every field set, against `schema`;
    /// the SDK needs a property when it cannot read `full` without it.
    fn read<T: Serialize + DeserializeOwned>(&mut self, schema: &Value, full: &T) {
        let full = serde_json::to_value(full).unwrap();
        let needed = paths(&full)
            .into_iter()
            .filter(|p| serde_json::from_value::<T>(without(&full, p)).is_err())
            .collect();
        self.walk(schema, &full, &needed, true);
    }

    /// A body the SDK sends, with every field set (`full`) and with only what it always
    /// sends (`minimal`), against `schema`. Only the top level's `required` is checked:
    /// the nested records are the domain's, checked where the SDK reads them.
    fn write<T: Serialize>(&mut self, schema: &Value, full: &T, minimal: &T) {
        let full = serde_json::to_value(full).unwrap();
        let minimal = serde_json::to_value(minimal).unwrap();
        let needed = minimal
            .as_object()
            .unwrap()
            .keys()
            .map(|k| vec![k.clone()])
            .collect();
        self.walk(schema, &full, &needed, false);
    }

    /// Compares `value` with `schema`, recursively: property names, `required` against
    /// `needed` (the paths the SDK cannot do without), enum values.
    fn walk(&mut self, schema: &Value, value: &Value, needed: &BTreeSet<Vec<String>>, deep: bool) {
        let mut at = Vec::new();
        self.walk_at(schema, value, needed, deep, &mut at);
    }

    fn walk_at(
        &mut self,
        schema: &Value,
        value: &Value,
        needed: &BTreeSet<Vec<String>>,
        deep: bool,
        at: &mut Vec<String>,
    ) {
        let (name, schema) = resolve(self.doc, schema);
        let name = name.unwrap_or_else(|| format!("(at {})", at.join(".")));
        match value {
            Value::Object(map) => {
                let Some(properties) = schema["properties"].as_object() else {
                    if let Some(entry) =
                        schema.get("additionalProperties").filter(|s| s.is_object())
                    {
                        for (key, v) in map {
                            at.push(key.clone());
                            self.walk_at(entry, v, needed, deep, at);
                            at.pop();
                        }
                    } else {
                        self.problems
                            .insert(format!("{name}: an object in the SDK, not in the schema"));
                    }
                    return;
                };
                let required = strings(&schema["required"]);
                for key in properties.keys().filter(|k| !map.contains_key(*k)) {
                    self.problems
                        .insert(format!("{name}.{key}: in the schema only"));
                }
                for (key, v) in map {
                    at.push(key.clone());
                    match properties.get(key) {
                        None => {
                            self.problems
                                .insert(format!("{name}.{key}: in the SDK only"));
                        }
                        Some(property) => {
                            if deep || at.len() == 1 {
                                match (needed.contains(at), required.contains(key)) {
                                    (true, false) => self.problems.insert(format!(
                                        "{name}.{key}: needed by the SDK, optional in the schema"
                                    )),
                                    (false, true) => self.problems.insert(format!(
                                        "{name}.{key}: required by the schema, the SDK does without it"
                                    )),
                                    _ => false,
                                };
                            }
                            self.walk_at(property, v, needed, deep, at);
                        }
                    }
                    at.pop();
                }
            }
            Value::Array(items) => {
                if let Some(item) = schema.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        at.push(i.to_string());
                        self.walk_at(item, v, needed, deep, at);
                        at.pop();
                    }
                }
            }
            Value::String(s)
                if schema.get("enum").is_some() && !strings(&schema["enum"]).contains(s) =>
            {
                self.problems
                    .insert(format!("{name}: `{s}` is not among the schema's values"));
            }
            _ => {}
        }
    }
}

/// The schema `schema` stands for, and its component name if it has one: `$ref`s
/// followed, a nullable `oneOf` (null or one schema) taken as that schema, an `allOf`
/// merged into one object.
fn resolve(doc: &Value, schema: &Value) -> (Option<String>, Value) {
    if let Some(name) = schema["$ref"].as_str() {
        let name = name.strip_prefix("#/components/schemas/").unwrap();
        let (_, schema) = resolve(doc, &doc["components"]["schemas"][name]);
        return (Some(name.to_owned()), schema);
    }
    if let Some(one_of) = schema["oneOf"].as_array() {
        let not_null: Vec<_> = one_of.iter().filter(|s| s["type"] != "null").collect();
        if let [only] = not_null[..] {
            return resolve(doc, only);
        }
    }
    if let Some(all_of) = schema["allOf"].as_array() {
        let (mut properties, mut required) = (serde_json::Map::new(), Vec::new());
        for part in all_of {
            let (_, part) = resolve(doc, part);
            properties.extend(part["properties"].as_object().cloned().unwrap_or_default());
            required.extend(part["required"].as_array().cloned().unwrap_or_default());
        }
        return (
            None,
            json!({ "properties": properties, "required": required }),
        );
    }
    (None, schema.clone())
}

fn response<'a>(doc: &'a Value, method: &str, path: &str, status: &str) -> &'a Value {
    let schema =
        &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "no {status} JSON answer of {method} {path} in the document"
    );
    schema
}

fn request<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let schema =
        &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "no JSON body of {method} {path} in the document"
    );
    schema
}

/// Every path to an object property in `value` (array elements by index).
fn paths(value: &Value) -> Vec<Vec<String>> {
    fn collect(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let children: Vec<(String, &Value)> = match value {
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
            _ => return,
        };
        for (key, child) in children {
            at.push(key);
            if value.is_object() {
                out.push(at.clone());
            }
            collect(child, at, out);
            at.pop();
        }
    }
    let mut out = Vec::new();
    collect(value, &mut Vec::new(), &mut out);
    out
}

/// `value` without the object property at `path`.
fn without(value: &Value, path: &[String]) -> Value {
    let mut copy = value.clone();
    let (last, parents) = path.split_last().unwrap();
    let mut parent = &mut copy;
    for key in parents {
        parent = match parent {
            Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
            other => &mut other[key.as_str()],
        };
    }
    parent.as_object_mut().unwrap().remove(last);
    copy
}

/// The paths of `answer` without which `call` fails, with `answer` (or it without one
/// property) as the server's answer; `call` tells whether it read `answer` right.
async fn needed_by_call<F, Fut>(answer: &Value, call: F) -> BTreeSet<Vec<String>>
where
    F: Fn(opsd_client::Client) -> Fut,
    Fut: Future<Output = opsd_client::Result<bool>>,
{
    let attempt = |answer: Value| {
        let call = &call;
        async move {
            let stub = Stub::start(vec![Reply::new(200, answer.to_string())]).await;
            call(client_for(&stub.base, "key")).await
        }
    };
    assert!(
        attempt(answer.clone()).await.unwrap(),
        "the SDK misread {answer}"
    );
    let mut needed = BTreeSet::new();
    for path in paths(answer) {
        if attempt(without(answer, &path)).await.is_err() {
            needed.insert(path);
        }
    }
    needed
}

/// The request `call` sends, to a stub that refuses it.
async fn sent<F, Fut, T>(call: F) -> crate::stub::Received
where
    F: FnOnce(opsd_client::Client) -> Fut,
    Fut: Future<Output = opsd_client::Result<T>>,
{
    let stub = Stub::start(vec![Reply::error(400, "stub")]).await;
    assert!(call(client_for(&stub.base, "key")).await.is_err());
    stub.received().pop().unwrap()
}

fn body(received: &crate::stub::Received) -> Value {
    serde_json::from_str(&received.body).unwrap()
}

fn query_names(received: &crate::stub::Received) -> BTreeSet<String> {
    let query = received.uri.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map_or(p, |(name, _)| name).to_owned())
        .collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn wire_names<T: Serialize>(values: &[T]) -> BTreeSet<String> {
    values
        .iter()
        .map(|v| {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// An operation with every field set.
fn operation() -> Operation {
    Operation {
        id: Uuid::nil(),
        project_id: "p".into(),
        kind: Kind::Vm,
        op_type: OpType::Update,
        resource_id: "vm-1".into(),
        status: Status::Failed,
        details: details(),
        progress: 50,
        status_message: Some("half".into()),
        description: Some("resize".into()),
        error: Some(operation_error()),
        warnings: vec![warning()],
        http_error_status_code: Some(500),
        http_error_message: Some("boom".into()),
        user: Some("someone".into()),
        request_id: Some("r-1".into()),
        region: Some("eu".into()),
        zone: Some("eu-1".into()),
        target_link: Some("https://example.com/vm-1".into()),
        created_at: datetime!(2026-01-01 0:00 UTC),
        started_at: Some(datetime!(2026-01-01 0:00:01 UTC)),
        ended_at: Some(datetime!(2026-01-01 0:00:02 UTC)),
        updated_at: datetime!(2026-01-01 0:00:02 UTC),
        version: 3,
        cancel_requested: true,
        trace_context: TraceContext::parse(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Some("vendor=value"),
        ),
    }
}

fn details() -> Details {
    let diff = FieldDiff {
        from: DiffValue::String("small".into()),
        to: DiffValue::String("large".into()),
    };
    Details {
        changes: [("size".to_owned(), diff)].into(),
    }
}

fn operation_error() -> OperationError {
    OperationError {
        errors: vec![ErrorItem {
            code: "QUOTA".into(),
            message: "over quota".into(),
            location: Some("size".into()),
        }],
    }
}

fn warning() -> Warning {
    Warning {
        code: "SLOW".into(),
        message: "slow disk".into(),
        data: vec![WarningData {
            key: "disk".into(),
            value: "d-1".into(),
        }],
    }
}

fn event() -> Event {
    Event {
        seq: 9,
        version: 3,
        status: Status::Running,
        progress: 50,
        message: Some("half".into()),
        at: datetime!(2026-01-01 0:00 UTC),
    }
}

fn api_key() -> ApiKey {
    ApiKey {
        id: Uuid::nil(),
        name: "k".into(),
        role: Role::Producer,
        projects: vec!["p".into()],
        prefix: "opsd_abc".into(),
        created_at: datetime!(2026-01-01 0:00 UTC),
        revoked_at: Some(datetime!(2026-01-02 0:00 UTC)),
    }
}
