//! Console sessions. Browsers cannot put an `Authorization` header on an `EventSource`,
//! and keys must not travel in URLs, so the console exchanges a key for a session: a
//! random secret in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` under TLS) that the
//! API accepts like the key it stands for. Sessions live in the key store (shared by
//! replicas); revoking the key ends them. State-changing requests made with a session
//! must come from our own origin and carry the session's CSRF token in `x-csrf-token`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use opsd_domain::ProjectScope;
use opsd_store::StoreError;
use opsd_store::sessions::csrf_token;
use serde::Serialize;
use utoipa::ToSchema;

use super::pages;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, Result};

/// The cookie's name.
pub const COOKIE: &str = "opsd_session";
/// How long a session lasts; the operator signs in again after that.
pub const SESSION_TTL: time::Duration = time::Duration::hours(12);
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session secret of the current request (set by the auth layer).
#[derive(Clone)]
pub struct Current(pub String);

/// The session secret in the request's `Cookie` header, if any.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Refuses a request that a page of another origin made the browser send: its `Origin`
/// (sent by browsers on every POST, PATCH and DELETE) must be ours, and `Sec-Fetch-Site`,
/// when present, must not say another site or origin.
pub fn same_origin(headers: &HeaderMap, scheme: &str) -> Result<(), ApiError> {
    let refused = |why: &str| {
        Err(ApiError::Forbidden(format!(
            "cross-origin request refused: {why}"
        )))
    };
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| !matches!(s, "same-origin" | "none")) {
        return refused("Sec-Fetch-Site is not same-origin");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let ours = host.map(|h| format!("{scheme}://{h}"));
    match (origin.to_str().ok(), ours) {
        (Some(o), Some(ours)) if o.eq_ignore_ascii_case(&ours) => Ok(()),
        _ => refused("Origin is not this server"),
    }
}

/// The checks a request authenticated by a session cookie must pass: reads always; any
/// other method only from our own origin and with the session's CSRF token.
pub fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    secret: &str,
    scheme: &str,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    same_origin(headers, scheme)?;
    let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes);
    let expected = csrf_token(secret);
    match sent {
        Some(sent) if opsd_store::api_keys::hashes_equal(sent, expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::Forbidden(format!(
            "a request made with a console session must carry the page's {CSRF_HEADER} header"
        ))),
    }
}

fn set_cookie(value: &str, max_age: i64, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static("opsd_session=; Max-Age=0"))
}

/// Where a sign-in may send the browser afterwards (nothing else: no open redirect).
fn next_page(next: Option<&str>) -> &'static str {
    match next {
        Some("/docs") => "/docs",
        _ => "/console",
    }
}

/// `POST /console/sign-in` (a form: `key`, optional `next`): exchanges a key for a
/// session cookie and goes to the console (or the docs). A wrong key shows the form again
/// with a 401.
pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = same_origin(&headers, state.scheme) {
        return e.into_response();
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let next = next_page(field("next").as_deref());
    let Some(key) = field("key").filter(|k| !k.is_empty()) else {
        return pages::sign_in(StatusCode::BAD_REQUEST, Some("Paste an API key."), next);
    };
    let principal = match state.auth.verify(&key).await {
        Ok(p) => p,
        Err(ApiError::Unauthenticated(_)) => {
            return pages::sign_in(
                StatusCode::UNAUTHORIZED,
                Some("That key is not valid or was revoked."),
                next,
            );
        }
        Err(e) => return e.into_response(),
    };
    let expires_at = opsd_domain::now() + SESSION_TTL;
    let session = match state
        .keys
        .create_session(principal.key_id, expires_at)
        .await
    {
        Ok(s) => s,
        Err(StoreError::KeyNotFound(_)) => {
            return pages::sign_in(
                StatusCode::UNAUTHORIZED,
                Some("That key was revoked."),
                next,
            );
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    tracing::info!(key = %principal.name, "console sign-in");
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            &session.secret,
            SESSION_TTL.whole_seconds(),
            state.scheme == "https",
        ),
    );
    response
}

/// `POST /console/sign-out`: ends the session (everywhere: it is deleted from the store)
/// and clears the cookie. Needs the CSRF token like every state-changing request.
pub async fn sign_out(
    State(state): State<AppState>,
    current: Option<axum::Extension<Current>>,
) -> Result<Response> {
    let Some(axum::Extension(Current(secret))) = current else {
        return Err(ApiError::Unauthenticated(
            "sign-out needs a console session",
        ));
    };
    state.keys.end_session(&secret, opsd_domain::now()).await?;
    state.auth.forget_session(&secret);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie("", 0, state.scheme == "https"),
    );
    Ok(response)
}

/// Who the console is signed in as.
#[derive(Debug, Serialize, ToSchema)]
pub struct Whoami {
    /// The key's name.
    pub name: String,
    /// The key's role.
    pub role: String,
    /// The key's projects, or `["*"]`.
    pub projects: Vec<String>,
}

/// `GET /console/session`: the signed-in key (name, role, projects).
pub async fn whoami(caller: Caller) -> Json<Whoami> {
    let p = caller.0;
    Json(Whoami {
        name: p.name.clone(),
        role: p.role.as_str().to_owned(),
        projects: match &p.projects {
            ProjectScope::All => vec!["*".to_owned()],
            ProjectScope::Only(set) => set.iter().cloned().collect(),
        },
    })
}
