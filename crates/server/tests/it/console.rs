//! The console's sessions and the browser-facing protections: a key exchanged for an
//! `HttpOnly`, `SameSite=Strict` cookie that the API accepts; CSRF checks on writes made
//! with it; sign-out; revocation; CORS. (Chromium drives the pages in `tests/browser`.)

use opsd_domain::Role;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestClient, TestServer, new_op, unique_project};

/// A signed-in browser: its cookie, CSRF token and origin.
struct Browser {
    client: TestClient,
    cookie: String,
    csrf: String,
    origin: String,
}

fn origin_of(client: &TestClient) -> String {
    let url = client.url("/", &[]);
    format!("http://{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

async fn sign_in(server: &TestServer, key: &str) -> Browser {
    let client = server.client.with_key(None);
    let origin = origin_of(&client);
    let resp = client
        .send(
            client
                .request(Method::POST, "/console/sign-in")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", &origin)
                .body(format!("key={key}&next=%2Fconsole")),
            StatusCode::SEE_OTHER,
        )
        .await;
    assert_eq!(resp.header("location"), "/console");
    let set = resp.header("set-cookie").to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(flag), "{flag} missing from {set}");
    }
    assert!(
        !set.contains("Secure"),
        "no Secure flag over plain HTTP: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = client
        .send(
            client
                .request(Method::GET, "/console")
                .header("cookie", &cookie),
            StatusCode::OK,
        )
        .await;
    let csrf = page
        .text
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF token in the console page: {}", page.text))
        .to_owned();
    assert_eq!(csrf.len(), 64);
    Browser {
        client,
        cookie,
        csrf,
        origin,
    }
}

impl Browser {
    fn headers(&self, csrf: bool, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_str(&self.cookie).unwrap());
        if csrf {
            h.insert("x-csrf-token", HeaderValue::from_str(&self.csrf).unwrap());
        }
        if let Some(o) = origin {
            h.insert("origin", HeaderValue::from_str(o).unwrap());
        }
        h
    }

    async fn sign_out(&self, csrf: bool, expected: StatusCode) -> crate::support::Resp {
        let req = self
            .client
            .request(Method::POST, "/console/sign-out")
            .headers(self.headers(csrf, Some(&self.origin)));
        self.client.send(req, expected).await
    }

    async fn get(&self, path: &str, expected: StatusCode) -> crate::support::Resp {
        let req = self.client.request(Method::GET, path);
        self.client
            .send(req.headers(self.headers(false, None)), expected)
            .await
    }
}

#[tokio::test]
async fn a_key_becomes_a_session_cookie_that_the_api_accepts() {
    let server = TestServer::start().await;
    let project = unique_project();
    let key = TestClient::mint_key(&server.store, Role::Reader, &[&project]).await;
    server.client.create(&new_op(&project)).await;
    let browser = sign_in(&server, &key).await;

    let list = browser
        .get(
            &format!("/v1/operations?project_id={project}"),
            StatusCode::OK,
        )
        .await
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // The session is the key: same projects, same role.
    browser
        .get("/v1/operations?project_id=elsewhere", StatusCode::FORBIDDEN)
        .await;
    let me = browser.get("/console/session", StatusCode::OK).await.json();
    assert_eq!(me["role"], "reader");
    assert_eq!(me["projects"], json!([project]));
    let projects = browser.get("/v1/projects", StatusCode::OK).await.json();
    assert_eq!(
        projects["items"],
        json!([{"project_id": project, "operation_count": 1}])
    );
    // The watch stream (EventSource) opens with the cookie alone (status only: the
    // stream itself never ends).
    let watch = browser
        .client
        .request(
            Method::GET,
            &format!("/v1/operations/watch?project_id={project}"),
        )
        .headers(browser.headers(false, None))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), StatusCode::OK);
    assert!(
        watch.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
}

#[tokio::test]
async fn a_wrong_key_gets_no_session() {
    let server = TestServer::start().await;
    let c = server.client.with_key(None);
    let resp = c
        .send(
            c.request(Method::POST, "/console/sign-in")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("key=opsd_0000"),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert!(resp.headers.get("set-cookie").is_none());
    assert!(resp.text.contains("not valid"), "{}", resp.text);
    // A made-up session cookie is refused like a missing key.
    c.send(
        c.request(Method::GET, "/v1/projects")
            .header("cookie", "opsd_session=opsds_forged"),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn writes_with_a_session_need_the_csrf_token_and_our_origin() {
    let server = TestServer::start().await;
    let project = unique_project();
    let key = TestClient::mint_key(&server.store, Role::Producer, &[&project]).await;
    let b = sign_in(&server, &key).await;
    let body = new_op(&project);
    let post = |headers: HeaderMap, expected| {
        let req = b
            .client
            .request(Method::POST, "/v1/operations")
            .headers(headers)
            .json(&body);
        b.client.send(req, expected)
    };
    // No token: refused (a cross-site form cannot add a header).
    post(b.headers(false, Some(&b.origin)), StatusCode::FORBIDDEN)
        .await
        .assert_error("permission_denied", None);
    // The token but another origin (a same-site page on another port): refused.
    post(
        b.headers(true, Some("http://127.0.0.1:1")),
        StatusCode::FORBIDDEN,
    )
    .await;
    // A wrong token: refused.
    let mut wrong = b.headers(false, Some(&b.origin));
    wrong.insert("x-csrf-token", HeaderValue::from_static("00"));
    post(wrong, StatusCode::FORBIDDEN).await;
    // Fetch metadata saying another site: refused even with the token.
    let mut cross = b.headers(true, None);
    cross.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
    post(cross, StatusCode::FORBIDDEN).await;
    // Nothing was created by the refused requests.
    let list = b
        .get(
            &format!("/v1/operations?project_id={project}"),
            StatusCode::OK,
        )
        .await
        .json();
    assert_eq!(list["pagination"]["total_count"], 0);
    // Our origin and the token: accepted.
    post(b.headers(true, Some(&b.origin)), StatusCode::CREATED).await;
    // A sign-in posted from another origin is refused too (login CSRF).
    let c = server.client.with_key(None);
    c.send(
        c.request(Method::POST, "/console/sign-in")
            .header("origin", "http://evil.example")
            .body(format!("key={key}")),
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn sign_out_and_key_revocation_end_sessions() {
    let server = TestServer::start().await;
    let key = TestClient::mint_key(&server.store, Role::Reader, &["*"]).await;
    let a = sign_in(&server, &key).await;
    let b = sign_in(&server, &key).await;

    // Sign-out without the token is refused; with it, the session ends.
    a.sign_out(false, StatusCode::FORBIDDEN).await;
    a.get("/v1/projects", StatusCode::OK).await;
    let resp = a.sign_out(true, StatusCode::NO_CONTENT).await;
    assert!(resp.header("set-cookie").contains("Max-Age=0"));
    a.get("/v1/projects", StatusCode::UNAUTHORIZED).await;
    // The console page shows the sign-in form again.
    let page = a.get("/console", StatusCode::OK).await;
    assert!(page.text.contains("/console/sign-in"));
    // The other session of the same key lives on.
    b.get("/v1/projects", StatusCode::OK).await;

    // Revoking the key ends its remaining sessions at once.
    let keys = server.client.get("/v1/api_keys", StatusCode::OK).await;
    let id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| key.starts_with(k["prefix"].as_str().unwrap()))
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .unwrap();
    server
        .client
        .send(
            server
                .client
                .request(Method::DELETE, &format!("/v1/api_keys/{id}")),
            StatusCode::NO_CONTENT,
        )
        .await;
    b.get("/v1/projects", StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_session_secret_is_not_an_api_key() {
    let server = TestServer::start().await;
    let key = TestClient::mint_key(&server.store, Role::Reader, &["*"]).await;
    let b = sign_in(&server, &key).await;
    let secret = b.cookie.trim_start_matches("opsd_session=");
    server
        .client
        .with_key(Some(secret))
        .get_resp("/v1/projects", StatusCode::UNAUTHORIZED)
        .await;
}

#[tokio::test]
async fn cors_answers_preflights_without_a_key_for_allowed_origins_only() {
    let allowed = "http://app.example";
    let server = TestServer::start_with(opsd_server::Config {
        cors_allowed_origins: vec![allowed.into()],
        ..opsd_server::Config::default()
    })
    .await;
    let c = server.client.with_key(None);
    let preflight = |origin: &str| {
        c.request(Method::OPTIONS, "/v1/operations")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
    };
    let ok = c.send(preflight(allowed), StatusCode::OK).await;
    assert_eq!(ok.header("access-control-allow-origin"), allowed);
    let methods = ok.header("access-control-allow-methods").to_lowercase();
    assert!(
        methods.contains("post") && methods.contains("patch"),
        "{methods}"
    );
    let headers = ok.header("access-control-allow-headers").to_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    // Cookies are never honoured cross-origin.
    assert!(ok.headers.get("access-control-allow-credentials").is_none());

    let other = c
        .send(preflight("http://evil.example"), StatusCode::OK)
        .await;
    assert!(other.headers.get("access-control-allow-origin").is_none());

    // An actual request still needs its key, and carries the CORS headers.
    let project = unique_project();
    let resp = server
        .client
        .send(
            server
                .client
                .request(Method::GET, &format!("/v1/operations?project_id={project}"))
                .header("origin", allowed),
            StatusCode::OK,
        )
        .await;
    assert_eq!(resp.header("access-control-allow-origin"), allowed);
    assert!(
        resp.header("access-control-expose-headers")
            .to_lowercase()
            .contains("x-request-id")
    );
}

#[tokio::test]
async fn without_cors_origins_a_preflight_is_an_unauthenticated_request() {
    let server = TestServer::start().await;
    let c = server.client.with_key(None);
    let resp = c
        .send(
            c.request(Method::OPTIONS, "/v1/operations")
                .header("origin", "http://app.example")
                .header("access-control-request-method", "GET"),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert!(resp.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn stats_checks_its_parameters_and_the_key_s_projects() {
    let server = TestServer::start().await;
    let project = unique_project();
    let c = &server.client;
    c.get_resp("/v1/operations/stats", StatusCode::BAD_REQUEST)
        .await
        .assert_error("invalid_argument", Some("project_id"));
    for hours in ["0", "49", "x", "-1"] {
        c.get_resp(
            &format!("/v1/operations/stats?project_id={project}&hours={hours}"),
            StatusCode::BAD_REQUEST,
        )
        .await
        .assert_error("invalid_argument", Some("hours"));
    }
    c.get_resp(
        &format!("/v1/operations/stats?project_id={project}&bogus=1"),
        StatusCode::BAD_REQUEST,
    )
    .await
    .assert_error("invalid_argument", Some("bogus"));
    let op = c.create(&new_op(&project)).await;
    c.patch(&op, &json!({"status": "running"})).await;
    let stats = c
        .get(
            &format!("/v1/operations/stats?project_id={project}&hours=1"),
            StatusCode::OK,
        )
        .await;
    assert_eq!(stats["project_id"], project.as_str());
    let statuses: Vec<_> = stats["per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"pending") && statuses.contains(&"running"));
    let reader = TestClient::mint_key(&server.store, Role::Reader, &["mine"]).await;
    c.with_key(Some(&reader))
        .get_resp(
            &format!("/v1/operations/stats?project_id={project}"),
            StatusCode::FORBIDDEN,
        )
        .await;
}
