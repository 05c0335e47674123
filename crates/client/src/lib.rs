//! `opsd-client`: the Rust SDK of opsd, the operations service of a cloud control plane.
//!
//! Typed calls for every endpoint, lists as [`Stream`](futures_util::Stream)s that follow
//! cursors, a watch stream that reconnects and resumes with `Last-Event-ID`, retries
//! with backoff where a retry can help (never when the server says
//! `x-should-retry: false`), timeouts, TLS (rustls), and a [`Worker`] that claims
//! operations, heartbeats their leases and finishes them.
//!
//! ```no_run
//! use opsd_client::{Client, Kind, NewOperation, OpType};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), opsd_client::Error> {
//! let client = Client::new("http://127.0.0.1:8080", "opsd_…")?;
//! let op = client
//!     .create(&NewOperation::new("proj-1", Kind::Vm, OpType::Update, "vm-42").request_id("resize-42"))
//!     .await?;
//! let finished = client.wait(op.id, Duration::from_secs(300)).await?;
//! println!("{} is {}", finished.id, finished.status);
//! # Ok(()) }
//! ```
//!
//! Read in this order: [`Client`] (this file: configuration and the request loop),
//! `operations` (get, list, create, update, events, cancel, wait), `watch`, `query`
//! (the filters a list and a watch share), `leases` (claim, heartbeat), `keys`, then
//! [`worker`].

mod admin;
mod error;
mod keys;
mod leases;
mod operations;
mod query;
mod retry;
mod types;
mod watch;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

pub use admin::BackupDownload;
pub use error::{ApiError, Error, Result};
pub use leases::ClaimRequest;
pub use operations::ListQuery;
pub use opsd_domain::cancel::CANCELLED;
pub use opsd_domain::{
    Details, ErrorItem, FieldDiff, Kind, OpType, OperationError, Role, Status, TraceContext,
};
pub use retry::RetryPolicy;
pub use types::{
    ApiKey, CreatedKey, Event, Lease, NewOperation, Operation, OperationPatch, Page, Pagination,
    Renewed,
};
pub use watch::{WatchEvent, WatchQuery};
pub use worker::{Summary, Task, TaskError, Worker, WorkerConfig};

use retry::Idempotency;

/// A handle on one opsd server. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// The W3C trace context sent with every request, if any.
    trace: Option<Arc<TraceHeaders>>,
}

/// A trace context as the header values it is sent as (built once, not per request).
struct TraceHeaders {
    context: TraceContext,
    parent: HeaderValue,
    state: Option<HeaderValue>,
}

impl TraceHeaders {
    fn new(context: TraceContext) -> Option<TraceHeaders> {
        Some(TraceHeaders {
            parent: HeaderValue::from_str(&context.traceparent()).ok()?,
            state: context
                .tracestate
                .as_deref()
                .and_then(|s| HeaderValue::from_str(s).ok()),
            context,
        })
    }
}

struct Inner {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    retry: RetryPolicy,
}

/// Configures a [`Client`].
pub struct ClientBuilder {
    base: String,
    key: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    root_certificates: Vec<Vec<u8>>,
    trace: Option<TraceContext>,
}

impl ClientBuilder {
    /// Sends `Authorization: Bearer <key>` on every request.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Longest an ordinary request may take (default 30 s); `wait` adds its own timeout
    /// to this, and watch streams have none (they detect silence instead).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest a connection may take to open (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How failed requests are retried (default: 3 retries, 250 ms doubling to 8 s).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Trusts this PEM certificate (e.g. a self-signed server's) besides the
    /// webpki roots.
    /// Sends `context` as `traceparent`/`tracestate` with every request, so that the
    /// server's spans join the caller's trace (see also [`Client::with_trace_context`]).
    pub fn trace_context(mut self, context: TraceContext) -> Self {
        self.trace = Some(context);
        self
    }

    /// [`trace_context`](Self::trace_context) from the `TRACEPARENT` and `TRACESTATE`
    /// environment variables, when `TRACEPARENT` holds a valid one (`opsd work` sets them
    /// for its commands, so that a script's own calls join the operation's trace).
    pub fn trace_context_from_env(mut self) -> Self {
        let parent = std::env::var("TRACEPARENT").ok();
        let state = std::env::var("TRACESTATE").ok();
        if let Some(cx) = parent.and_then(|p| TraceContext::parse(&p, state.as_deref())) {
            self.trace = Some(cx);
        }
        self
    }

    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.root_certificates.push(pem.to_vec());
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
                .map_err(|_| Error::Config("the API key cannot go in a header".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("opsd-client/", env!("CARGO_PKG_VERSION")));
        for pem in &self.root_certificates {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| Error::Config(format!("root certificate: {e}")))?;
            http = http.add_root_certificate(cert);
        }
        let http = http.build().map_err(|e| Error::Config(e.to_string()))?;
        let base = self.base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "the server URL must start with http:// or https://, not '{base}'"
            )));
        }
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                timeout: self.timeout,
                retry: self.retry,
            }),
            trace: self.trace.and_then(TraceHeaders::new).map(Arc::new),
        })
    }
}

impl Client {
    /// A client for the server at `base_url` using `api_key`, with default settings.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Result<Client> {
        Client::builder(base_url).api_key(api_key).build()
    }

    /// A builder for the server at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            key: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            root_certificates: Vec::new(),
            trace: None,
        }
    }

    /// The server's base URL.
    /// This client, sending `context` as its W3C trace context on every request (the
    /// connection pool and settings are shared with `self`). The [`Worker`] uses it so
    /// that the heartbeats and the final update of an operation join the trace of the
    /// request that created it.
    pub fn with_trace_context(&self, context: TraceContext) -> Client {
        Client {
            inner: self.inner.clone(),
            trace: TraceHeaders::new(context).map(Arc::new),
        }
    }

    /// The trace context this client sends, if any.
    pub fn trace_context(&self) -> Option<&TraceContext> {
        self.trace.as_deref().map(|t| &t.context)
    }

    /// `request` with this client's trace context headers, if it has one.
    fn traced(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let Some(trace) = &self.trace else {
            return request;
        };
        let request = request.header("traceparent", trace.parent.clone());
        match &trace.state {
            Some(state) => request.header("tracestate", state.clone()),
            None => request,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }

    /// Sends the request `make` builds, retrying by the policy; returns the successful
    /// response (any 2xx). `extra` is added to the client's timeout.
    async fn send(
        &self,
        idem: Idempotency,
        extra: Duration,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let mut attempt = 0;
        loop {
            let result = self
                .traced(make(&self.inner.http))
                .timeout(self.inner.timeout + extra)
                .send()
                .await;
            let error = match result {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) => Error::Api(ApiError::from_response(r).await),
                Err(e) => Error::from_reqwest(e),
            };
            match self.inner.retry.delay(&error, attempt, idem) {
                Some(delay) => {
                    tracing::debug!(%error, attempt, ?delay, "opsd request failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => return Err(error),
            }
        }
    }

    /// [`send`](Self::send), then decodes the JSON body.
    async fn json<T: DeserializeOwned>(
        &self,
        idem: Idempotency,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<T> {
        let response = self.send(idem, Duration::ZERO, make).await?;
        decode(response).await
    }
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let bytes = response.bytes().await.map_err(Error::from_reqwest)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
}
