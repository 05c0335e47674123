//! A stub HTTP server that answers from a script, counting requests: for the failures
//! a test cannot get from the real server on demand (a 503 exactly twice, a slow
//! answer). It keeps what it received, for tests of what the SDK puts on the wire.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One scripted answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// An opsd error answer.
    pub fn error(status: u16, code: &str) -> Reply {
        Reply::new(
            status,
            format!(r#"{{"code":"{code}","message":"stub says {code}","request_id":"stub-1"}}"#),
        )
    }

    /// A 200 with a valid operation.
    pub fn operation() -> Reply {
        Reply::new(200, OPERATION)
    }
}

pub const OPERATION: &str = r#"{"id":"01a22df0-fbb5-74e6-b5b7-dd3eb0d31457","project_id":"p","kind":"vm","type":"update","resource_id":"vm-1","status":"pending","details":{"changes":{}},"progress":0,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","version":1,"cancel_requested":false}"#;

/// A request as the stub received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Path and query, e.g. `/v1/operations?project_id=p`.
    pub uri: String,
    pub body: String,
}

pub struct Stub {
    pub base: String,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Stub {
    /// Serves `script` in order on a new port, repeating the last reply.
    pub async fn start(script: Vec<Reply>) -> Stub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, script)
    }

    /// Serves `script` on `listener`.
    pub fn start_on(listener: tokio::net::TcpListener, script: Vec<Reply>) -> Stub {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(Mutex::new(script));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (counter, log) = (hits.clone(), received.clone());
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (script, counter, log) = (script.clone(), counter.clone(), log.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                log.lock().unwrap().push(Received {
                    uri: parts.uri.to_string(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                answer(&script, &counter).await
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stub {
            base,
            hits,
            received,
        }
    }

    /// The requests received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn answer(script: &Mutex<Vec<Reply>>, counter: &AtomicUsize) -> Response {
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let reply = {
        let script = script.lock().unwrap();
        script[n.min(script.len() - 1)].clone()
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}
