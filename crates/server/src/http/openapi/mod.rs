//! The OpenAPI document. Each handler describes its own parameters, bodies and the
//! statuses only it returns (`#[utoipa::path]`); what every endpoint shares — the
//! security schemes, the statuses any layer may answer (401, 429, 503, 413, 415), the
//! response headers, Google's standard parameters, the links between operations — is
//! added once by `contract::Contract`, so it cannot be forgotten on a new endpoint.
//! The document is checked against the server by `tests/it/contract.rs` and, from the
//! outside, by Schemathesis (`scripts/schemathesis`).

mod contract;
mod google;

use contract::Contract;
use google::GoogleConventions;

use std::sync::OnceLock;

use utoipa::OpenApi;

use super::error::ErrorBody;
use super::google::error::GoogleErrorBody;
use super::live::watch::ResetData as WatchReset;

/// The OpenAPI description, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "opsd",
        description = "Operations service for cloud control planes: the Nirvana Labs \
                       Operations API, Google Cloud Deployment Manager v2 `operations`, \
                       and a producer API. Every endpoint but `/healthz` and `/readyz` needs \
                       an API key."
    ),
    paths(
        super::nirvana::operations::get,
        super::nirvana::operations::list,
        super::nirvana::producer::create,
        super::nirvana::producer::update,
        super::nirvana::producer::events,
        super::nirvana::producer::cancel,
        super::google::operations::get,
        super::google::operations::list,
        super::google::operations::wait,
        super::keys::create,
        super::keys::list,
        super::keys::revoke,
        super::admin::backup,
        super::admin::read_only,
        super::admin::set_read_only,
        super::live::wait::wait,
        super::live::watch::watch,
        super::live::leases::claim,
        super::live::leases::heartbeat,
        super::projects::stats,
        super::projects::projects,
        super::system::healthz,
        super::system::readyz,
        super::system::openapi,
        super::console::pages::docs,
        super::request_metrics::export,
    ),
    components(schemas(
        ErrorBody,
        GoogleErrorBody,
        WatchReset,
        opsd_domain::FieldDiff,
        super::console::session::Whoami
    )),
    modifiers(&Contract, &GoogleConventions)
)]
pub struct ApiDoc;

/// The document, built once (it never changes while the process runs).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}
