//! The harness: a real server on a loopback port over a fresh SQLite file, and a client
//! whose every call states the status it expects, so that a failing test prints the
//! response body instead of a bare status mismatch.

use std::sync::Arc;
use std::time::Duration;

use opsd_domain::{NewApiKey, ProjectScope, Role};
use opsd_server::{AppState, Config};
use opsd_store_open::Backend;
use opsd_store_suite::TestDb;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running opsd on 127.0.0.1 with its own database file.
pub struct TestServer {
    /// A client holding an admin key for all projects.
    pub client: TestClient,
    /// The store behind the server, to mint other keys.
    pub store: Arc<dyn Backend>,
    db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server over an empty store.
    pub async fn start() -> Self {
        Self::start_with(Config::default()).await
    }

    /// Starts a server over an empty store with the given limits.
    pub async fn start_with(config: Config) -> Self {
        let db = TestDb::new().await;
        let store = db.open().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::from_parts(store.clone(), store.clone(), &config);
        let (_, admin) = store
            .create_key(NewApiKey {
                name: "test-admin".into(),
                role: Role::Admin,
                projects: ProjectScope::All,
            })
            .await
            .unwrap();
        let task = tokio::spawn(opsd_server::serve(listener, state, async move {
            // A dropped sender (the test ended) also means "stop".
            let _ = rx.await;
        }));
        TestServer {
            client: TestClient::new(&format!("http://{addr}"), Some(&admin)),
            store,
            db,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The server's database, to reopen the store after the server stopped.
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// Asks the server to stop accepting; in-flight requests go on.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for `serve` to return, failing the test if it takes longer than `limit`.
    pub async fn join(&mut self, limit: Duration) {
        let task = self.task.take().expect("server already joined");
        tokio::time::timeout(limit, task)
            .await
            .expect("server did not stop in time")
            .expect("serve task panicked")
            .expect("serve returned an error");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.trigger_shutdown();
    }
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    /// The body as JSON; panics with the raw text if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    /// A header's value; panics if it is absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// Checks the error contract: a JSON `{code, message, field?, request_id}` whose
    /// request id is the header's, and `x-should-retry: false` (every 4xx opsd sends is
    /// one a retry cannot fix). `field: None` leaves the field unchecked.
    pub fn assert_error(&self, code: &str, field: Option<&str>) -> Value {
        let body = self.json();
        assert_eq!(body["code"], code, "error code in {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "error without message: {body}");
        if let Some(field) = field {
            assert_eq!(body["field"], field, "error field in {body}");
        }
        assert_eq!(
            body["request_id"],
            self.header("x-request-id"),
            "request_id in {body}"
        );
        assert!(
            self.header("content-type").starts_with("application/json"),
            "error content-type {:?}",
            self.headers
        );
        if self.status.is_client_error() {
            assert_eq!(self.header("x-should-retry"), "false");
        }
        body
    }
}

/// An HTTP client bound to one server.
#[derive(Clone)]
pub struct TestClient {
    base: String,
    http: reqwest::Client,
}

impl TestClient {
    /// A client for `base` that sends `key` (if any) as a bearer token on every request.
    pub fn new(base: &str, key: Option<&str>) -> Self {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {key}").parse().unwrap(),
            );
        }
        TestClient {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .default_headers(headers)
                // Redirects (the console's sign-in) are asserted, not followed.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// `http://127.0.0.1:port` of the server.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A client for the same server with another key (or none).
    pub fn with_key(&self, key: Option<&str>) -> Self {
        TestClient::new(&self.base, key)
    }

    /// Mints a key on `server`'s store and returns its secret.
    pub async fn mint_key(store: &Arc<dyn Backend>, role: Role, projects: &[&str]) -> String {
        let list: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
        let projects = ProjectScope::from_list("projects", &list).unwrap();
        store
            .create_key(NewApiKey {
                name: format!("test-{}", role.as_str()),
                role,
                projects,
            })
            .await
            .unwrap()
            .1
    }

    /// The absolute URL of `path`, with `query` encoded.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        Url::parse_with_params(&format!("{}{path}", self.base), query).unwrap()
    }

    /// A request to build further (headers, raw bodies) and pass to [`send`](Self::send).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends `request`, asserts the status and that the response names its request id.
    pub async fn send(&self, request: RequestBuilder, expected: StatusCode) -> Resp {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url());
        let response = self.http.execute(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        assert_eq!(status, expected, "{what} answered {status}: {text}");
        assert!(
            headers.contains_key("x-request-id"),
            "{what}: no x-request-id in {headers:?}"
        );
        Resp {
            status,
            headers,
            text,
        }
    }

    pub async fn get_resp(&self, path: &str, expected: StatusCode) -> Resp {
        self.send(self.request(Method::GET, path), expected).await
    }

    pub async fn get(&self, path: &str, expected: StatusCode) -> Value {
        self.get_resp(path, expected).await.json()
    }

    /// `GET path?query` with the query properly encoded.
    pub async fn get_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
        expected: StatusCode,
    ) -> Resp {
        self.send(self.http.get(self.url(path, query)), expected)
            .await
    }

    pub async fn post_resp(&self, path: &str, body: &Value, expected: StatusCode) -> Resp {
        self.send(self.request(Method::POST, path).json(body), expected)
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value, expected: StatusCode) -> Value {
        self.post_resp(path, body, expected).await.json()
    }

    pub async fn patch_resp(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
        expected: StatusCode,
    ) -> Resp {
        let mut request = self.request(Method::PATCH, path).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request, expected).await
    }

    pub async fn patch_json(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
        expected: StatusCode,
    ) -> Value {
        self.patch_resp(path, body, headers, expected).await.json()
    }

    /// Creates an operation from `body`, expecting a fresh one (201).
    pub async fn create(&self, body: &Value) -> Value {
        self.post_json("/v1/operations", body, StatusCode::CREATED)
            .await
    }

    /// Moves an operation with `patch` (unconditionally), expecting success.
    pub async fn patch(&self, op: &Value, patch: &Value) -> Value {
        self.patch_json(&op_path(op), patch, &[], StatusCode::OK)
            .await
    }

    /// `GET /v1/operations` with `query`.
    pub async fn list(&self, query: &[(&str, &str)], expected: StatusCode) -> Resp {
        self.get_query("/v1/operations", query, expected).await
    }
}

/// A project id no other test uses.
/// An HTTP/2 connection (prior knowledge, as gRPC clients open one) to the server behind
/// `client`, and the server's `host:port`.
pub async fn http2_connection(
    client: &TestClient,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Full<axum::body::Bytes>>,
    String,
) {
    let addr = client.base().trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    (sender, addr)
}

pub fn unique_project() -> String {
    format!("proj-{}", uuid::Uuid::now_v7().simple())
}

/// A valid create body for `project`, with one diff.
pub fn new_op(project: &str) -> Value {
    json!({
        "project_id": project,
        "kind": "vm",
        "type": "update",
        "resource_id": "vm-1",
        "details": {"changes": {"cpu": {"from": 2, "to": 4}}},
    })
}

/// `/v1/operations/{id}` of an operation body.
pub fn op_path(op: &Value) -> String {
    format!("/v1/operations/{}", id_of(op))
}

pub fn id_of(op: &Value) -> &str {
    op["id"].as_str().unwrap_or_else(|| panic!("no id in {op}"))
}

/// The ids of a list page's items, in order.
pub fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {page}"))
        .iter()
        .map(|op| id_of(op).to_owned())
        .collect()
}

/// Parses an RFC 3339 field of a body.
pub fn time_of(op: &Value, field: &str) -> time::OffsetDateTime {
    let s = op[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {op}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{field}={s} is not RFC 3339: {e}"))
}
