//! What every endpoint shares, added to the document in one place: who may call it
//! (security), the statuses the layers in front of the handlers answer, and the headers
//! every response carries. (No OpenAPI `links`: utoipa 5.5 writes a link's
//! `operationId` as `operation_id`, which makes the document invalid; stateful clients
//! follow the `Location` header of a create instead.)

use utoipa::Modify;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr, SecurityRequirement};

use crate::http::auth::{is_optional_auth, is_public};
use crate::http::google::PREFIX as GOOGLE_PREFIX;

/// Name of the bearer-key security scheme.
const BEARER: &str = "bearer";
/// Name of Google's `?key=` security scheme.
const GOOGLE_KEY: &str = "googleKey";

/// Adds security, shared statuses, headers and links.
pub struct Contract;

impl Modify for Contract {
    fn modify(&self, api: &mut OpenApi) {
        add_security_schemes(api);
        api.security = Some(vec![SecurityRequirement::new(BEARER, [] as [&str; 0])]);
        for (path, item) in api.paths.paths.iter_mut() {
            let google = path.starts_with(GOOGLE_PREFIX);
            for op in operations(item) {
                shared_statuses(path, google, op);
                response_headers(op);
                optional_headers_are_not_null(op);
            }
        }
    }
}

/// The operations of a path item, whatever their method.
pub fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

fn add_security_schemes(api: &mut OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("opsd_<64 hex digits>")
                .description(Some(
                    "An API key: `Authorization: Bearer opsd_…`. Send exactly one \
                     Authorization header.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        GOOGLE_KEY,
        SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
            "key",
            "The same API key as Google's `?key=` (Deployment Manager paths only; a bearer \
             header wins when both are sent).",
        ))),
    );
}

/// Statuses answered before or around the handler: authentication (401), the key's rate
/// (429), overload (503), and body limits (413, 415) where there is a body.
fn shared_statuses(path: &str, google: bool, op: &mut Operation) {
    let body = if google {
        "GoogleErrorBody"
    } else {
        "ErrorBody"
    };
    if is_public(path) || is_optional_auth(path) {
        // Probes answer without a key and bypass the overload limits; `/docs` answers
        // anyone (a signed-out browser is sent to the sign-in form).
        op.security = Some(vec![]);
        return;
    }
    op.security = Some(if google {
        vec![
            SecurityRequirement::new(BEARER, [] as [&str; 0]),
            SecurityRequirement::new(GOOGLE_KEY, [] as [&str; 0]),
        ]
    } else {
        vec![SecurityRequirement::new(BEARER, [] as [&str; 0])]
    });
    let header = |name: &str, t: Type, description: &str| {
        (
            name.to_owned(),
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(t))
                .description(Some(description))
                .build(),
        )
    };
    let retry_after = header(
        "Retry-After",
        Type::Integer,
        "Seconds to wait before retrying",
    );
    let errors = [
        (
            "401",
            "No key, more than one Authorization header, or a key that is unknown or revoked",
            Some(header(
                "WWW-Authenticate",
                Type::String,
                "`Bearer realm=\"opsd\"`",
            )),
        ),
        (
            "429",
            "The key sent more requests than its rate allows (`rate_limited`); or, \
             from one client address, too many requests with a bad key",
            Some(retry_after.clone()),
        ),
        (
            "503",
            "The server is at its concurrency limit, a request took longer than its \
             timeout (`overloaded`), or storage cannot take writes now (`unavailable`, \
             e.g. disk full); or the database's answer to a write's commit was lost and \
             could not be recovered (`outcome_unknown`: read back, or retry with the same \
             request_id or If-Match): retry after Retry-After",
            Some(retry_after),
        ),
    ];
    for (status, description, extra) in errors {
        add_error(op, status, description, body, extra);
    }
    if op.request_body.is_some() {
        add_error(op, "413", "The body is larger than 1 MiB", body, None);
        add_error(
            op,
            "415",
            "The body is not sent as `application/json`",
            body,
            None,
        );
    }
}

fn add_error(
    op: &mut Operation,
    status: &str,
    description: &str,
    body: &str,
    header: Option<(String, utoipa::openapi::header::Header)>,
) {
    let entry = op
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(body)))
                        .build(),
                )
                .build()
                .into()
        });
    if let (RefOr::T(response), Some((name, h))) = (entry, header) {
        response.headers.insert(name, h);
    }
}

/// `x-request-id` on every response; `x-should-retry: false` on errors a retry cannot fix.
fn response_headers(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        insert_header(
            response,
            "x-request-id",
            "The request's id (the caller's, if it sent one of at most 128 printable characters); also in error bodies and the server log",
            None,
        );
        if status.starts_with('4') && status != "429" {
            insert_header(
                response,
                "x-should-retry",
                "`false`: retrying the same request cannot succeed",
                Some("false"),
            );
        }
    }
}

fn insert_header(response: &mut Response, name: &str, description: &str, only: Option<&str>) {
    let mut schema = ObjectBuilder::new().schema_type(Type::String);
    if let Some(value) = only {
        schema = schema.enum_values(Some([value]));
    }
    response.headers.entry(name.to_owned()).or_insert_with(|| {
        HeaderBuilder::new()
            .schema(schema)
            .description(Some(description))
            .build()
    });
}

/// utoipa types an optional header parameter as nullable; a header is sent or not, and
/// its value is never JSON `null`.
fn optional_headers_are_not_null(op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        if p.parameter_in != ParameterIn::Header {
            continue;
        }
        if let Some(RefOr::T(Schema::Object(o))) = &mut p.schema
            && let SchemaType::Array(types) = &o.schema_type
        {
            let types: Vec<Type> = types
                .iter()
                .filter(|t| **t != Type::Null)
                .cloned()
                .collect();
            if let [only] = types.as_slice() {
                o.schema_type = SchemaType::Type(only.clone());
            }
        }
    }
}
