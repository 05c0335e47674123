//! Google's conventions on the Deployment Manager paths: the standard query parameters
//! every method accepts, and partial responses (`fields`), which is why no property of
//! Google's representations is marked required (Google's own discovery document marks
//! none either).

use utoipa::Modify;
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, RefOr, Required};

use super::contract::operations;
use crate::http::google::PREFIX;

/// Adds the standard parameters and relaxes `required` for `fields` masks.
pub struct GoogleConventions;

/// Name, schema and meaning of each standard parameter opsd accepts. `callback` (JSONP)
/// is refused, so it is not listed.
fn standard_parameters() -> Vec<(&'static str, ObjectBuilder, &'static str)> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    vec![
        (
            "fields",
            string(),
            "Partial response: a field mask such as `operations(name,status),nextPageToken` \
             (any property may then be absent; unknown names select nothing; empty means the \
             whole answer)",
        ),
        (
            "alt",
            string().enum_values(Some(["json"])),
            "Response format; only `json`",
        ),
        (
            "prettyPrint",
            ObjectBuilder::new().schema_type(Type::Boolean),
            "Indent the answer (default true)",
        ),
        ("quotaUser", string(), "Accepted and ignored"),
        (
            "access_token",
            string(),
            "Accepted and ignored (use `key` or a bearer key)",
        ),
        (
            "oauth_token",
            string(),
            "Accepted and ignored (use `key` or a bearer key)",
        ),
        (
            "$.xgafv",
            string(),
            "Error format version; accepted and ignored",
        ),
        ("uploadType", string(), "Accepted and ignored"),
        ("upload_protocol", string(), "Accepted and ignored"),
        (
            "header.bypassBillingFilter",
            string(),
            "Accepted and ignored",
        ),
    ]
}

impl Modify for GoogleConventions {
    fn modify(&self, api: &mut OpenApi) {
        for (path, item) in api.paths.paths.iter_mut() {
            if !path.starts_with(PREFIX) {
                continue;
            }
            for op in operations(item) {
                let params = op.parameters.get_or_insert_with(Vec::new);
                for (name, schema, description) in standard_parameters() {
                    params.push(
                        ParameterBuilder::new()
                            .name(name)
                            .parameter_in(ParameterIn::Query)
                            .required(Required::False)
                            .schema(Some(schema))
                            .description(Some(description))
                            .build(),
                    );
                }
            }
        }
        let Some(components) = api.components.as_mut() else {
            return;
        };
        for name in ["GoogleOperation", "GoogleOperationList"] {
            if let Some(RefOr::T(Schema::Object(o))) = components.schemas.get_mut(name) {
                o.required.clear();
            }
        }
    }
}
