//! Reading the OpenAPI document next to what the SDK sends and reads: the walk that
//! compares a JSON value with its schema, and the ways of learning what the SDK needs
//! and sends.

use std::collections::BTreeSet;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::stub::{Received, Reply, Stub};
use crate::support::client_for;

/// Compares values the SDK sends or reads with the schemas the document gives for them.
pub(super) struct Contract<'a> {
    pub(super) doc: &'a Value,
    pub(super) problems: BTreeSet<String>,
}

impl Contract<'_> {
    /// `full`, a value of a type the SDK reads with every field set, against `schema`;
    /// the SDK needs a property when it cannot read `full` without it.
    pub(super) fn read<T: Serialize + DeserializeOwned>(&mut self, schema: &Value, full: &T) {
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
    pub(super) fn write<T: Serialize>(&mut self, schema: &Value, full: &T, minimal: &T) {
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
    pub(super) fn walk(
        &mut self,
        schema: &Value,
        value: &Value,
        needed: &BTreeSet<Vec<String>>,
        deep: bool,
    ) {
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
pub(super) fn resolve(doc: &Value, schema: &Value) -> (Option<String>, Value) {
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

pub(super) fn response<'a>(doc: &'a Value, method: &str, path: &str, status: &str) -> &'a Value {
    let schema =
        &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "no {status} JSON answer of {method} {path} in the document"
    );
    schema
}

pub(super) fn request<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let schema =
        &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "no JSON body of {method} {path} in the document"
    );
    schema
}

/// Every path to an object property in `value` (array elements by index).
pub(super) fn paths(value: &Value) -> Vec<Vec<String>> {
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
pub(super) fn without(value: &Value, path: &[String]) -> Value {
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
pub(super) async fn needed_by_call<F, Fut>(answer: &Value, call: F) -> BTreeSet<Vec<String>>
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
pub(super) async fn sent<F, Fut, T>(call: F) -> Received
where
    F: FnOnce(opsd_client::Client) -> Fut,
    Fut: Future<Output = opsd_client::Result<T>>,
{
    let stub = Stub::start(vec![Reply::error(400, "stub")]).await;
    assert!(call(client_for(&stub.base, "key")).await.is_err());
    stub.received().pop().unwrap()
}

pub(super) fn body(received: &Received) -> Value {
    serde_json::from_str(&received.body).unwrap()
}

pub(super) fn query_names(received: &Received) -> BTreeSet<String> {
    let query = received.uri.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map_or(p, |(name, _)| name).to_owned())
        .collect()
}

pub(super) fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

pub(super) fn wire_names<T: Serialize>(values: &[T]) -> BTreeSet<String> {
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
