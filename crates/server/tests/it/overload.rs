//! Overload (issue item 5): a global cap on concurrent ordinary requests that sheds with
//! 503 + `Retry-After` at once rather than queueing, a per-request timeout, and a per-key
//! rate limit (429 + `Retry-After`), each configured through `Config`.
//!
//! Requests are held in flight deterministically by sending the head and half the JSON
//! body of a POST over a raw socket and then stalling: the handler holds its permit while
//! it waits for the rest of the body. (reqwest's `Body::wrap_stream` would need a `Stream`
//! implementation, and no futures crate is a dependency of this package.)

use std::time::{Duration, Instant};

use opsd_domain::Role;
use opsd_server::{Config, RateLimit};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{TestClient, TestServer, new_op, op_path, unique_project};

/// A hand-written HTTP/1.1 client over one socket, for requests reqwest cannot make:
/// bodies that stall halfway, heads larger than a `Uri` may hold.
pub mod raw {
    use std::io;
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::Value;
    use tokio::net::TcpStream;

    use crate::support::TestClient;

    /// One connection to the server.
    pub struct Conn {
        stream: Arc<TcpStream>,
        buf: Vec<u8>,
    }

    /// A response as read off the wire.
    #[derive(Debug)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        /// A header's value (names compared case-insensitively).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        /// The body as JSON; panics with the text if it is not.
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!(
                    "body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&self.body)
                )
            })
        }
    }

    /// `host:port` of the server `c` talks to.
    pub fn addr(c: &TestClient) -> String {
        let url = c.url("/", &[]);
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
    }

    impl Conn {
        /// Opens a connection to the server `c` talks to.
        pub async fn open(c: &TestClient) -> Self {
            let stream = TcpStream::connect(addr(c)).await.unwrap();
            stream.set_nodelay(true).unwrap();
            Conn {
                stream: Arc::new(stream),
                buf: Vec::new(),
            }
        }

        /// Whether the server has answered or closed the connection yet (without
        /// consuming what it wrote).
        pub async fn answered(&self) -> bool {
            let mut byte = [0u8; 1];
            tokio::time::timeout(Duration::from_millis(1), self.stream.peek(&mut byte))
                .await
                .is_ok()
        }

        /// Writes all of `bytes`.
        pub async fn write(&self, bytes: &[u8]) -> io::Result<()> {
            write_all(&self.stream, bytes).await
        }

        /// Writes `bytes` in the background, ignoring errors: for bodies the server may
        /// refuse (and stop reading) halfway.
        pub fn write_in_background(&self, bytes: Vec<u8>) -> tokio::task::JoinHandle<()> {
            let stream = self.stream.clone();
            tokio::spawn(async move {
                let _ = write_all(&stream, &bytes).await;
            })
        }

        /// Reads one response (bodies by `content-length`, `chunked`, or to the end).
        pub async fn response(&mut self) -> io::Result<Response> {
            let head_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                    break i;
                }
                if self.read_more().await? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed before a response head; got {:?}",
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ));
                }
            };
            let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
            self.buf.drain(..head_end + 4);
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let get = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let body = if let Some(len) = get("content-length") {
                let len: usize = len.parse().map_err(io::Error::other)?;
                self.fill(len).await?;
                self.buf.drain(..len).collect()
            } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                let mut body = Vec::new();
                loop {
                    let line_end = loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            break i;
                        }
                        if self.read_more().await? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                    };
                    let size = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                    let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
                        .map_err(io::Error::other)?;
                    self.buf.drain(..line_end + 2);
                    self.fill(size + 2).await?;
                    body.extend(self.buf.drain(..size));
                    self.buf.drain(..2);
                    if size == 0 {
                        break body;
                    }
                }
            } else {
                while self.read_more().await? > 0 {}
                std::mem::take(&mut self.buf)
            };
            Ok(Response {
                status,
                headers,
                body,
            })
        }

        /// Reads one response, failing the test if none arrives within `limit`.
        pub async fn response_within(&mut self, limit: Duration) -> Response {
            tokio::time::timeout(limit, self.response())
                .await
                .unwrap_or_else(|_| panic!("no response within {limit:?}"))
                .unwrap_or_else(|e| panic!("no response: {e}"))
        }

        async fn fill(&mut self, len: usize) -> io::Result<()> {
            while self.buf.len() < len {
                if self.read_more().await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok(())
        }

        async fn read_more(&mut self) -> io::Result<usize> {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                self.stream.readable().await?;
                match self.stream.try_read(&mut chunk) {
                    Ok(n) => {
                        self.buf.extend_from_slice(&chunk[..n]);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }

    async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            stream.writable().await?;
            match stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }
}

/// A POST /v1/operations whose body stops halfway until [`Stalled::finish`].
struct Stalled {
    conn: raw::Conn,
    rest: Vec<u8>,
}

impl Stalled {
    /// Sends the head and the first half of a valid create body for `project`.
    async fn start(c: &TestClient, key: &str, project: &str) -> Self {
        let body = serde_json::to_vec(&new_op(project)).unwrap();
        let head = format!(
            "POST /v1/operations HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            raw::addr(c),
            body.len()
        );
        let conn = raw::Conn::open(c).await;
        let half = body.len() / 2;
        conn.write(head.as_bytes()).await.unwrap();
        conn.write(&body[..half]).await.unwrap();
        Stalled {
            conn,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body and reads the answer.
    async fn finish(mut self) -> raw::Response {
        self.conn.write(&self.rest).await.unwrap();
        self.conn.response_within(Duration::from_secs(10)).await
    }
}

/// Asserts a raw response is a 503 `overloaded` with a positive `Retry-After`.
fn assert_shed(r: &raw::Response, google: bool) {
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After in {:?}", r.headers))
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    let body = r.json();
    if google {
        assert_eq!(body["error"]["code"], 503, "{body}");
        assert_eq!(body["error"]["status"], "UNAVAILABLE", "{body}");
    } else {
        assert_eq!(body["code"], "overloaded", "{body}");
    }
}

/// A client with no default key that gives up after `secs`.
fn http(secs: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(secs))
        .build()
        .unwrap()
}

/// Sends a GET with `key` and returns status, `Retry-After` and body.
async fn get_with(
    http: &reqwest::Client,
    c: &TestClient,
    path: &str,
    key: &str,
) -> (StatusCode, Option<String>, Value) {
    let resp = http
        .get(format!("http://{}{path}", raw::addr(c)))
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: no response: {e}"));
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, retry, body)
}

/// A 429 is `rate_limited`, says when to retry, and (unlike other 4xx) may be retried.
fn assert_rate_limited(resp: &crate::support::Resp) {
    let body = resp.json();
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert_eq!(body["request_id"], resp.header("x-request-id"), "{body}");
    assert!(resp.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert!(
        resp.headers.get("x-should-retry").is_none(),
        "{:?}",
        resp.headers
    );
}

fn config(max_concurrent: usize, timeout: Duration) -> Config {
    Config {
        max_concurrent_requests: max_concurrent,
        request_timeout: timeout,
        max_long_lived_requests: 100,
        rate_limit: None,
        ..Config::default()
    }
}

/// `n` POSTs stalled halfway through their bodies, each holding one of the server's
/// ordinary permits: returns once the server sheds a probe. A probe can overtake a
/// stalled request the server has not read yet and take the last permit for a moment,
/// and that stalled request is then refused (on a loaded machine, often enough to
/// fail a run); a refused one is replaced until the server is full.
async fn saturate(c: &TestClient, key: &str, project: &str, n: usize) -> Vec<Stalled> {
    let http = http(5);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stalled: Vec<Stalled> = Vec::new();
    loop {
        let mut holding = Vec::with_capacity(n);
        for s in stalled {
            if !s.conn.answered().await {
                holding.push(s);
            }
        }
        stalled = holding;
        while stalled.len() < n {
            stalled.push(Stalled::start(c, key, project).await);
        }
        let path = format!("/v1/operations?project_id={project}");
        let (status, _, _) = get_with(&http, c, &path, key).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return stalled;
        }
        assert!(
            Instant::now() < deadline,
            "the server never reached its concurrency limit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_concurrency_limit_requests_are_shed_with_503_not_queued() {
    let server = TestServer::start_with(config(4, Duration::from_secs(30))).await;
    let c = &server.client;
    let p = unique_project();
    let key = TestClient::mint_key(&server.store, Role::Admin, &["*"]).await;
    let existing = c.create(&new_op(&p)).await;

    let stalled = saturate(c, &key, &p, 4).await;

    // Twenty more of every kind at once: each is refused promptly, none waits.
    let google = format!("/deploymentmanager/v2/projects/{p}/global/operations");
    // The sixth kind is a create, sent in full.
    let paths = [
        format!("/v1/operations?project_id={p}"),
        op_path(&existing),
        format!("{}/events", op_path(&existing)),
        google.clone(),
        "/v1/api_keys".to_owned(),
        "/v1/operations".to_owned(),
    ];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        let key = key.clone();
        let path = paths[i % paths.len()].clone();
        let is_google = path == google;
        let is_create = i % paths.len() == 5;
        tasks.push(tokio::spawn(async move {
            let mut conn = raw::Conn::open(&c).await;
            let request = if is_create {
                let body = serde_json::to_vec(&new_op(&unique_project())).unwrap();
                let mut r = format!(
                    "POST /v1/operations HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
                     content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend(body);
                r
            } else {
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\r\n")
                    .into_bytes()
            };
            conn.write(&request).await.unwrap();
            let r = conn.response_within(Duration::from_secs(5)).await;
            assert_shed(&r, is_google);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shedding took {:?}",
        started.elapsed()
    );

    // The admitted requests were never disturbed: they complete and succeed.
    let mut ids = Vec::new();
    for s in stalled {
        let r = s.finish().await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    for id in ids {
        c.get(&format!("/v1/operations/{id}"), StatusCode::OK).await;
    }
    // Once they are done, there is room again.
    c.list(&[("project_id", &p)], StatusCode::OK).await;
    c.get_resp("/healthz", StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lived_requests_are_not_counted_against_the_ordinary_cap() {
    let server = TestServer::start_with(config(2, Duration::from_secs(30))).await;
    let c = &server.client;
    let p = unique_project();
    let key = TestClient::mint_key(&server.store, Role::Admin, &["*"]).await;
    let op = c.create(&new_op(&p)).await;
    let stalled = saturate(c, &key, &p, 2).await;
    // Waits and watch streams have their own cap: with every ordinary permit taken they
    // are still admitted (whatever they then answer, it is not the ordinary cap's 503).
    let http = http(5);
    for path in [
        format!("{}/wait?timeout=1s", op_path(&op)),
        format!("/v1/operations/watch?project_id={p}"),
    ] {
        let resp = http
            .get(format!("http://{}{path}", raw::addr(c)))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: no response head: {e}"));
        assert_ne!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "GET {path}");
    }
    for s in stalled {
        assert_eq!(s.finish().await.status, 201);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_gets_503_after_about_that_long() {
    let timeout = Duration::from_millis(300);
    // One permit only: after the timeout it must be free again.
    let server = TestServer::start_with(config(1, timeout)).await;
    let c = &server.client;
    let p = unique_project();
    let key = TestClient::mint_key(&server.store, Role::Admin, &["*"]).await;
    for _ in 0..2 {
        let started = Instant::now();
        let mut s = Stalled::start(c, &key, &p).await;
        let r = s.conn.response_within(Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert_shed(&r, false);
        assert!(
            took >= timeout - Duration::from_millis(20) && took < Duration::from_secs(3),
            "answered after {took:?}"
        );
        // The timed-out request gave its permit back although its client is still
        // connected; its operation was never created, since its body never arrived.
        let list = c.list(&[("project_id", &p)], StatusCode::OK).await.json();
        assert_eq!(list["pagination"]["total_count"], 0, "{list}");
        drop(s);
    }
    // Requests that finish in time are unaffected.
    c.create(&new_op(&p)).await;
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_while_other_keys_and_health_are_unaffected() {
    let server = TestServer::start_with(Config {
        rate_limit: Some(RateLimit {
            per_second: 1.0,
            burst: 3.0,
        }),
        ..Config::default()
    })
    .await;
    let c = &server.client;
    let p = unique_project();
    let a = TestClient::mint_key(&server.store, Role::Reader, &["*"]).await;
    let b = TestClient::mint_key(&server.store, Role::Reader, &["*"]).await;
    let http = http(10);
    let list = format!("/v1/operations?project_id={p}");
    for _ in 0..3 {
        let (status, _, body) = get_with(&http, c, &list, &a).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, retry, body) = get_with(&http, c, &list, &a).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    let retry: u64 = retry.expect("no Retry-After on a 429").parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");

    // The same key on the Google path: limited too, the Google way.
    let google = format!("/deploymentmanager/v2/projects/{p}/global/operations");
    let (status, retry, body) = get_with(&http, c, &google, &a).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED", "{body}");
    assert!(retry.is_some());

    // Another key has its own bucket.
    for _ in 0..3 {
        let (status, _, body) = get_with(&http, c, &list, &b).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Health and readiness are never limited, with or without the exhausted key.
    for _ in 0..20 {
        for path in ["/healthz", "/readyz"] {
            let (status, _, _) = get_with(&http, c, path, &a).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let resp = http
                .get(format!("http://{}{path}", raw::addr(c)))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
        }
    }
    // The bucket refills at the configured rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = get_with(&http, c, &list, &a).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_limited_key_changes_nothing_and_costs_other_keys_nothing() {
    // Slow refill, so that no token comes back while the test runs.
    let server = TestServer::start_with(Config {
        rate_limit: Some(RateLimit {
            per_second: 0.05,
            burst: 2.0,
        }),
        ..Config::default()
    })
    .await;
    let c = &server.client;
    let p = unique_project();
    let noisy = c.with_key(Some(
        &TestClient::mint_key(&server.store, Role::Producer, &["*"]).await,
    ));
    let quiet = c.with_key(Some(
        &TestClient::mint_key(&server.store, Role::Producer, &["*"]).await,
    ));
    let create = |client: &TestClient| {
        client
            .request(Method::POST, "/v1/operations")
            .json(&new_op(&p))
    };
    for _ in 0..2 {
        noisy.send(create(&noisy), StatusCode::CREATED).await;
    }
    for _ in 0..50 {
        let resp = noisy
            .send(create(&noisy), StatusCode::TOO_MANY_REQUESTS)
            .await;
        assert_rate_limited(&resp);
    }
    // Exactly the two admitted creates happened.
    let list = c.list(&[("project_id", &p)], StatusCode::OK).await.json();
    assert_eq!(list["pagination"]["total_count"], 2, "{list}");
    // The other key still has its whole burst.
    for _ in 0..2 {
        quiet.send(create(&quiet), StatusCode::CREATED).await;
    }
    assert_rate_limited(
        &quiet
            .send(create(&quiet), StatusCode::TOO_MANY_REQUESTS)
            .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_lived_cap_counts_open_watch_streams() {
    let server = TestServer::start_with(Config {
        max_long_lived_requests: 1,
        ..config(8, Duration::from_secs(30))
    })
    .await;
    let c = &server.client;
    let p = unique_project();
    let key = TestClient::mint_key(&server.store, Role::Admin, &["*"]).await;
    let url = format!("http://{}/v1/operations/watch?project_id={p}", raw::addr(c));
    let http = http(5);
    // An open stream holds the only long-lived permit after its headers were sent…
    let open = http.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let second = http.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(second.headers().contains_key("retry-after"));
    // …and gives it back when the client goes away.
    drop(open);
    let mut admitted = false;
    for _ in 0..50 {
        let again = http.get(&url).bearer_auth(&key).send().await.unwrap();
        if again.status() == StatusCode::OK {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "the permit of a closed stream was never released");
}
