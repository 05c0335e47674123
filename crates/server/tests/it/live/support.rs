//! A minimal in-process server for the live-operations tests: a temporary SQLite store
//! wrapped in a read-counting decorator, `opsd_server::serve` on 127.0.0.1:0, optional
//! background tasks, a client that asserts the status of every call, and a small SSE
//! reader.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use opsd_domain::{ApiKey, NewApiKey, ProjectScope, Role};
use opsd_domain::{Event, ListFilter, Operation, Page, PageRequest, Sort};
use opsd_server::background::{Background, LiveConfig};
use opsd_server::{AppState, Config};
use opsd_store::{Backfill, FeedChange, KeyStore, Result, Store};
use opsd_store_open::Backend;
use opsd_store_suite::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// A store that counts the reads made through it (`get`, `list`, `events`,
/// `events_since`, …), so a test can prove that a waiting request reads nothing. It can
/// also slow watch backfills down, to widen the window in which a write commits between
/// a watch's subscription and its backfill read.
pub struct CountingStore {
    inner: Arc<dyn Backend>,
    reads: AtomicUsize,
    feed: Option<broadcast::Sender<FeedChange>>,
    backfill_delay_ms: AtomicU64,
    /// Held for writing, it holds every `get_many` before it reads.
    pub get_many_gate: tokio::sync::RwLock<()>,
    /// How many operations each `get_many` asked for, in order.
    pub get_many_sizes: std::sync::Mutex<Vec<usize>>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            reads: AtomicUsize::new(0),
            feed: None,
            backfill_delay_ms: AtomicU64::new(0),
            get_many_gate: tokio::sync::RwLock::new(()),
            get_many_sizes: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Makes every `events_since` wait this long before reading.
    pub fn delay_backfills(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap();
        self.backfill_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Wraps `inner`, with `feed` in place of its change feed (tests that need a tiny
    /// feed, or full control of what it carries).
    pub fn with_feed(inner: Arc<dyn Backend>, feed: broadcast::Sender<FeedChange>) -> Self {
        Self {
            feed: Some(feed),
            ..Self::new(inner)
        }
    }

    /// Reads so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
    }
}

/// Keys are not counted: they pass straight through (writes, of keys as of operations,
/// go to the inner store's writer queue by the traits' defaults).
#[async_trait]
impl KeyStore for CountingStore {
    fn key_queue(&self) -> &opsd_store::write::Queue {
        self.inner.key_queue()
    }
    async fn list_keys(&self) -> opsd_store::Result<Vec<ApiKey>> {
        self.inner.list_keys().await
    }
    async fn authenticate(&self, secret: &str) -> opsd_store::Result<Option<ApiKey>> {
        self.inner.authenticate(secret).await
    }
    async fn has_ever_had_keys(&self) -> opsd_store::Result<bool> {
        self.inner.has_ever_had_keys().await
    }
    async fn session_key(
        &self,
        secret: &str,
        now: OffsetDateTime,
    ) -> opsd_store::Result<Option<(ApiKey, OffsetDateTime)>> {
        self.inner.session_key(secret, now).await
    }
}

#[async_trait]
impl Store for CountingStore {
    fn queue(&self) -> &opsd_store::write::Queue {
        self.inner.queue()
    }
    fn epoch(&self) -> &str {
        self.inner.epoch()
    }
    async fn get(&self, id: Uuid) -> Result<Option<Operation>> {
        self.read();
        self.inner.get(id).await
    }
    async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<Operation>> {
        self.read();
        self.get_many_sizes.lock().unwrap().push(ids.len());
        let _open = self.get_many_gate.read().await;
        self.inner.get_many(ids).await
    }
    async fn list(&self, filter: &ListFilter, sort: &Sort, page: &PageRequest) -> Result<Page> {
        self.read();
        self.inner.list(filter, sort, page).await
    }
    async fn events(&self, id: Uuid) -> Result<Vec<Event>> {
        self.read();
        self.inner.events(id).await
    }
    async fn ping(&self) -> Result<()> {
        self.read();
        self.inner.ping().await
    }
    fn subscribe(&self) -> broadcast::Receiver<FeedChange> {
        match &self.feed {
            Some(feed) => feed.subscribe(),
            None => self.inner.subscribe(),
        }
    }
    fn want_whole(&self, project_id: &str) -> opsd_store::WantWhole {
        self.inner.want_whole(project_id)
    }
    async fn events_since(&self, project: &str, after: u64, limit: usize) -> Result<Backfill> {
        self.read();
        let delay = self.backfill_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.inner.events_since(project, after, limit).await
    }
    async fn next_lease_expiry(&self) -> Result<Option<OffsetDateTime>> {
        self.read();
        self.inner.next_lease_expiry().await
    }
    async fn leases_held(&self) -> Result<u64> {
        self.read();
        self.inner.leases_held().await
    }
    async fn stats(
        &self,
        request: &opsd_store::stats::StatsRequest,
    ) -> Result<opsd_store::stats::ProjectStats> {
        self.read();
        self.inner.stats(request).await
    }
    async fn projects(&self) -> Result<Vec<opsd_store::stats::ProjectCount>> {
        self.read();
        self.inner.projects().await
    }
}

/// A running server on its own fresh store.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The server's state (store, waiters, metrics).
    pub state: AppState,
    /// The store, with its read counter.
    pub store: Arc<CountingStore>,
    /// A client with a large connection pool.
    pub http: reqwest::Client,
    /// The admin key `http` sends (for raw connections).
    pub admin_key: String,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<std::io::Result<()>>>,
    background: Option<Background>,
    _db: TestDb,
}

impl TestServer {
    /// A server without background tasks (no lease expiry, no retention).
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A server with lease expiry and retention running as `opsd serve` runs them.
    pub async fn with_background(retention: Duration) -> Self {
        Self::start_with(Some(LiveConfig { retention })).await
    }

    async fn start_with(background: Option<LiveConfig>) -> Self {
        let db = TestDb::new().await;
        let store = Arc::new(CountingStore::new(db.open().await));
        let state = AppState::new(store.clone(), &Config::default());
        let (_, admin) = store
            .create_key(NewApiKey {
                name: "live-admin".into(),
                role: Role::Admin,
                projects: ProjectScope::All,
            })
            .await
            .unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {admin}").parse().unwrap(),
        );
        let admin_key = admin.to_string();
        let background =
            background.map(|config| Background::start(state.background_handles(), &config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = oneshot::channel::<()>();
        let served = tokio::spawn(opsd_server::serve(listener, state.clone(), async move {
            let _ = stop.await;
        }));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(2048)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            base,
            state,
            store,
            http,
            admin_key,
            shutdown: Some(shutdown),
            served: Some(served),
            background,
            _db: db,
        }
    }

    /// Shuts the server down gracefully; panics if that takes more than `within`.
    pub async fn stop(mut self, within: Duration) {
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(within, self.served.take().unwrap())
            .await
            .expect("graceful shutdown took too long")
            .unwrap()
            .unwrap();
        if let Some(bg) = self.background.take() {
            bg.stop().await;
        }
    }

    /// Sends a request and asserts its status; returns the JSON body (`Null` if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expect: StatusCode,
    ) -> Value {
        let (status, value) = self.try_call(method.clone(), path, body).await;
        assert_eq!(status, expect, "{method} {path} answered {value}");
        value
    }

    /// Sends a request; returns status and JSON body (`Null` if none).
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    /// Creates a `pending` operation.
    pub async fn create(&self, project: &str, kind: &str, resource: &str) -> Value {
        let body = serde_json::json!({
            "project_id": project, "kind": kind, "type": "create", "resource_id": resource,
        });
        self.call(
            Method::POST,
            "/v1/operations",
            Some(body),
            StatusCode::CREATED,
        )
        .await
    }

    /// PATCHes an operation, asserting the status.
    pub async fn patch(&self, id: &str, body: Value, expect: StatusCode) -> Value {
        self.call(
            Method::PATCH,
            &format!("/v1/operations/{id}"),
            Some(body),
            expect,
        )
        .await
    }

    /// The operation as GET returns it.
    pub async fn get(&self, id: &str) -> Value {
        self.call(
            Method::GET,
            &format!("/v1/operations/{id}"),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// The value of one metric line (`name{labels}`), if exported.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

/// Polls `check` every 20 ms until it holds; panics after `within`. (The test polls; the
/// server never does.)
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    /// The seq part of the event id (`<epoch>-<seq>`).
    pub id: Option<u64>,
    /// The epoch part of the event id.
    pub epoch: Option<String>,
    pub data: Value,
}

/// What reading a stream gave.
#[derive(Debug)]
pub enum Next {
    Event(SseEvent),
    /// The server ended the stream.
    End,
    /// Nothing within the time given.
    Idle,
}

/// A watch stream as a client reads it.
pub struct SseStream {
    response: reqwest::Response,
    pending: Vec<u8>,
    event: Option<String>,
    id: Option<(String, u64)>,
    data: Option<String>,
    ready: VecDeque<SseEvent>,
}

impl SseStream {
    /// Opens `GET /v1/operations/watch?<query>`, resuming after `last_event_id`.
    pub async fn open(server: &TestServer, query: &str, last_event_id: Option<u64>) -> Self {
        let id = last_event_id.map(|seq| format!("{}-{seq}", server.state.store.epoch()));
        Self::open_raw(server, query, id.as_deref()).await
    }

    /// Opens the stream with `Last-Event-ID` exactly `last_event_id`.
    pub async fn open_raw(server: &TestServer, query: &str, last_event_id: Option<&str>) -> Self {
        let mut request = server
            .http
            .get(format!("{}/v1/operations/watch?{query}", server.base));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            pending: Vec::new(),
            event: None,
            id: None,
            data: None,
            ready: VecDeque::new(),
        }
    }

    /// The next event, waiting at most `within`.
    pub async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Next::Event(e);
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Next::Idle,
                Ok(Ok(Some(bytes))) => self.feed(&bytes),
                Ok(Ok(None) | Err(_)) => return Next::End,
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b != b'\n' {
                self.pending.push(b);
                continue;
            }
            let line = String::from_utf8(std::mem::take(&mut self.pending)).unwrap();
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    self.ready.push_back(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        id: self.id.as_ref().map(|id| id.1),
                        epoch: self.id.as_ref().map(|id| id.0.clone()),
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(": ").unwrap_or((line, ""));
            match field {
                "event" => self.event = Some(value.into()),
                "id" => {
                    let (epoch, seq) = value.rsplit_once('-').expect("an id is <epoch>-<seq>");
                    self.id = Some((epoch.to_owned(), seq.parse().unwrap()));
                }
                "data" => {
                    assert!(self.data.is_none(), "multi-line data");
                    self.data = Some(value.into());
                }
                other => panic!("unexpected SSE field {other}"),
            }
        }
    }
}
