//! The canonical operation record (docs/api.md, "The rules a producer meets"). Both HTTP dialects render this one type;
//! the store persists it. Wire names of the Nirvana dialect are the serde names here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// Declares a closed string enum with its wire names, `as_str`, `parse` and `ALL`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $wire)] $variant),+ }

        // Written by hand: utoipa's derive does not see serde renames made inside a
        // macro and would publish the Rust variant names (`Vm`) instead of the wire names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($wire),+]))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire (and storage) name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Parses a wire name; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }

            /// The accepted wire names joined for error messages.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// Kind of resource the operation acts on.
    Kind {
        Vm = "vm",
        Volume = "volume",
        Vpc = "vpc",
        FirewallRule = "firewall_rule",
        NksCluster = "nks_cluster",
        NksNodePool = "nks_node_pool",
        ConnectConnection = "connect_connection",
        NksLoadBalancer = "nks_load_balancer",
        NksNode = "nks_node",
    }
}

wire_enum! {
    /// What the operation does to its resource.
    OpType {
        Create = "create",
        Update = "update",
        Delete = "delete",
        Restart = "restart",
    }
}

wire_enum! {
    /// Lifecycle state; see `state` for the allowed transitions.
    Status {
        Pending = "pending",
        Running = "running",
        Done = "done",
        Failed = "failed",
        Unknown = "unknown",
    }
}

impl Status {
    /// `done` and `failed` accept no further change.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Done | Status::Failed)
    }
}

/// One side of a field diff: a string, a number, a boolean or an array of strings.
///
/// Numbers keep their JSON spelling (`4` stays `4`, not `4.0`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DiffValue {
    /// A boolean value.
    Bool(bool),
    /// A numeric value.
    Number(serde_json::Number),
    /// A string value.
    String(String),
    /// An array of strings.
    Strings(Vec<String>),
}

impl<'de> Deserialize<'de> for DiffValue {
    // Hand-written so that a wrong type gets a message stating the rule, rather than
    // serde's "did not match any variant of untagged enum".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_json::Value;
        const RULE: &str = "must be a string, a number, a boolean or an array of strings";
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(DiffValue::Bool(b)),
            Value::Number(n) => Ok(DiffValue::Number(n)),
            Value::String(s) => Ok(DiffValue::String(s)),
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(serde::de::Error::custom(RULE)),
                })
                .collect::<Result<_, _>>()
                .map(DiffValue::Strings),
            Value::Null | Value::Object(_) => Err(serde::de::Error::custom(RULE)),
        }
    }
}

impl utoipa::PartialSchema for DiffValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::limits::{MAX_ARRAY_ITEMS, MAX_TEXT_LEN, TEXT_PATTERN};
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let scalar = |t| ObjectBuilder::new().schema_type(t);
        let text = || {
            scalar(Type::String)
                .max_length(Some(MAX_TEXT_LEN))
                .pattern(Some(TEXT_PATTERN))
        };
        OneOfBuilder::new()
            .item(text())
            .item(scalar(Type::Number))
            .item(scalar(Type::Boolean))
            .item(
                ArrayBuilder::new()
                    .items(text())
                    .max_items(Some(MAX_ARRAY_ITEMS)),
            )
            .description(Some(
                "A string, a number, a boolean or an array of strings.",
            ))
            .into()
    }
}

impl ToSchema for DiffValue {}

/// A single field's before/after pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDiff {
    /// Previous value.
    pub from: DiffValue,
    /// New value.
    pub to: DiffValue,
}

/// Structured details about what an operation is changing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Details {
    /// Map of changed field names to their from/to diffs.
    #[serde(default, deserialize_with = "unique_keys")]
    #[schema(schema_with = changes_schema)]
    pub changes: BTreeMap<String, FieldDiff>,
}

/// `changes`: at most 256 entries, names of 1–256 characters.
fn changes_schema() -> utoipa::openapi::schema::Object {
    use crate::limits::{MAX_CHANGES, MAX_LABEL_LEN, TEXT_PATTERN};
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
    let mut names = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_LABEL_LEN))
        .pattern(Some(TEXT_PATTERN))
        .build();
    names.description = None;
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(MAX_CHANGES))
        .additional_properties(Some(AdditionalProperties::RefOr(
            utoipa::openapi::Ref::from_schema_name("FieldDiff").into(),
        )))
        .build();
    object.property_names = Some(Box::new(Schema::Object(names)));
    object
}

/// Reads a JSON object into a map, refusing a key that appears twice (serde_json would
/// silently keep the last one, so a client's mistake would pass unnoticed).
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Visitor<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
                }
                let value: crate::strict_json::Object<V> = map.next_value()?;
                out.insert(key, value.0);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visitor(std::marker::PhantomData))
}

/// One error met while processing the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorItem {
    /// Machine-readable error code.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub code: String,
    /// Human-readable message.
    #[schema(
        max_length = 4096,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub message: String,
    /// The request field that caused it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 256,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub location: Option<String>,
}

/// Errors of a failed operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationError {
    /// The errors, at least one.
    #[serde(deserialize_with = "crate::strict_json::objects")]
    #[schema(min_items = 1, max_items = 100)]
    pub errors: Vec<ErrorItem>,
}

/// A key/value pair attached to a warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarningData {
    /// Key.
    #[schema(
        max_length = 256,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub key: String,
    /// Value.
    #[schema(
        max_length = 4096,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub value: String,
}

/// A warning raised while processing the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Warning {
    /// Warning code.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub code: String,
    /// Human-readable message.
    #[schema(
        max_length = 4096,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*$"
    )]
    pub message: String,
    /// Extra metadata.
    #[serde(default, deserialize_with = "crate::strict_json::objects")]
    #[schema(max_items = 100)]
    pub data: Vec<WarningData>,
}

/// The canonical operation, as stored.
///
/// Its serde form (snake_case, RFC 3339 times, `type` for `op_type`) is the canonical
/// snapshot: what a watch replays for an old event, exactly the version GET returned
/// then. Stores keep each event's version compactly and rebuild this value from it
/// (`opsd_store::history`); databases from before that kept it as JSON per event, and
/// `cancel_requested` is absent in the oldest of those.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// UUIDv7, server-assigned.
    pub id: Uuid,
    /// Strictly increasing, server-assigned; Google's numeric `id`.
    pub seq: u64,
    pub project_id: String,
    pub kind: Kind,
    #[serde(rename = "type")]
    pub op_type: OpType,
    pub resource_id: String,
    pub status: Status,
    pub details: Details,
    pub progress: u8,
    pub status_message: Option<String>,
    pub description: Option<String>,
    pub error: Option<OperationError>,
    pub warnings: Vec<Warning>,
    pub http_error_status_code: Option<u16>,
    pub http_error_message: Option<String>,
    pub user: Option<String>,
    pub request_id: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub target_link: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// +1 on every change; the ETag.
    pub version: u64,
    /// Someone asked to cancel this operation; its worker should stop and fail it with
    /// `CANCELLED` (absent in JSON snapshots written before cancellation existed).
    #[serde(default)]
    pub cancel_requested: bool,
    /// Trace context of the request that created the operation, if it carried one (or
    /// was traced by opsd itself); fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<crate::TraceContext>,
}

/// One entry of an operation's history: the state right after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Global, strictly increasing event number (the watch stream's `id:`).
    pub seq: u64,
    pub operation_id: Uuid,
    pub version: u64,
    pub status: Status,
    pub progress: u8,
    pub status_message: Option<String>,
    pub at: OffsetDateTime,
}

/// Current UTC time truncated to microseconds, the precision the store keeps.
pub fn now() -> OffsetDateTime {
    truncate_micros(OffsetDateTime::now_utc())
}

/// Drops sub-microsecond precision so that stored and in-memory times compare equal.
pub fn truncate_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.nanosecond() / 1_000 * 1_000;
    t.replace_nanosecond(micros).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewOperation;

    #[test]
    fn snapshot_serde_round_trips() {
        let t = truncate_micros(OffsetDateTime::now_utc());
        let new = NewOperation {
            project_id: "p".into(),
            kind: Kind::NksNodePool,
            op_type: OpType::Restart,
            resource_id: "np-1".into(),
            details: Details::default(),
            description: Some("d".into()),
            request_id: None,
            user: Some("u".into()),
            region: None,
            zone: Some("z".into()),
            target_link: None,
            trace_context: None,
        };
        let mut op = new.into_operation(Uuid::now_v7(), t);
        op.started_at = Some(t);
        op.warnings = vec![Warning {
            code: "W".into(),
            message: "m".into(),
            data: vec![],
        }];
        let json = serde_json::to_value(&op).expect("serialize");
        assert_eq!(json["type"], "restart");
        assert_eq!(json["kind"], "nks_node_pool");
        assert!(json["ended_at"].is_null());
        let back: Operation = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, op);
    }
}
