//! The client sends its W3C trace context on every call: set on the builder, derived
//! with `with_trace_context`, or read from `TRACEPARENT`; none when it has none.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use opsd_client::{Client, TraceContext};

use crate::stub::OPERATION;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A server that answers every request with an operation and keeps each request's
/// `traceparent` and `tracestate`.
async fn recorder() -> (String, Arc<Mutex<Vec<(Option<String>, Option<String>)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let kept = kept.clone();
        async move {
            let get = |name| {
                headers
                    .get(name)
                    .map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_owned())
            };
            kept.lock()
                .unwrap()
                .push((get("traceparent"), get("tracestate")));
            ([("content-type", "application/json")], OPERATION)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

#[tokio::test]
async fn every_call_carries_the_clients_context() {
    let (base, seen) = recorder().await;
    let id: uuid::Uuid = "01a22df0-fbb5-74e6-b5b7-dd3eb0d31457".parse().unwrap();
    let plain = Client::new(&base, "k").unwrap();
    plain.get(id).await.unwrap();
    let cx = TraceContext::parse(PARENT, Some("vendor=x")).unwrap();
    let traced = plain.with_trace_context(cx.clone());
    assert_eq!(traced.trace_context(), Some(&cx));
    traced.get(id).await.unwrap();
    traced.cancel(id).await.unwrap();
    let built = Client::builder(&base)
        .api_key("k")
        .trace_context(TraceContext::parse(PARENT, None).unwrap())
        .build()
        .unwrap();
    built.get(id).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let parent = Some(PARENT.to_owned());
    assert_eq!(
        seen,
        vec![
            (None, None),
            (parent.clone(), Some("vendor=x".to_owned())),
            (parent.clone(), Some("vendor=x".to_owned())),
            (parent, None),
        ]
    );
}
