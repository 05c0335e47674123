//! The server span of each request (OpenTelemetry's HTTP semantic conventions). The trace
//! context an operation is created in comes from the request's scope
//! (`request_id::creation_context`).
//!
//! Spans are made only while export is on (`opsd_store::trace::enabled`); off, a
//! request costs one atomic load here, plus a header lookup for an incoming
//! `traceparent`, which is kept with the operation it creates either way.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use opsd_domain::TraceContext;
use opsd_store::trace;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// The W3C trace context a request carries, if valid (an invalid one is ignored: the
/// request starts a new trace, as the W3C recommendation asks).
pub fn incoming(headers: &HeaderMap) -> Option<TraceContext> {
    let parent = headers.get("traceparent")?.to_str().ok()?;
    let state = headers.get("tracestate").and_then(|v| v.to_str().ok());
    TraceContext::parse(parent, state)
}

/// Opens the server span of `request`, continuing `parent` when it carries one. The
/// route is its template (`/v1/operations/{operation_id}`), never the path with ids in
/// it, so that spans group by endpoint; the query string is not recorded (it may carry
/// a credential).
pub fn request_span(request: &Request, parent: Option<&TraceContext>, request_id: &str) -> Span {
    // Only the ids are fields of the `tracing` span (the log formatter prints a line's
    // spans with their fields, so every line written inside the request carries them);
    // the conventions' attributes go to the OpenTelemetry span alone.
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        trace_id = Empty,
        span_id = Empty
    );
    if let Some(parent) = parent {
        // Only fails for a span that has started, and this one has not.
        let _ = span.set_parent(trace::parent(parent));
    }
    let method = request.method().as_str();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let cx = span.context();
    let otel = cx.span();
    // A gRPC call is named and described as the RPC conventions say: `service/method`.
    let rpc = super::is_grpc(request.headers())
        .then(|| request.uri().path().trim_start_matches('/').split_once('/'))
        .flatten();
    otel.update_name(match (rpc, route) {
        (Some((service, rpc_method)), _) => format!("{service}/{rpc_method}"),
        (None, Some(route)) => format!("{method} {route}"),
        (None, None) => method.to_owned(),
    });
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.to_owned()),
        KeyValue::new("url.path", request.uri().path().to_owned()),
        KeyValue::new(
            "url.scheme",
            request.uri().scheme_str().unwrap_or("http").to_owned(),
        ),
        KeyValue::new("network.protocol.name", "http"),
        KeyValue::new("opsd.request_id", request_id.to_owned()),
    ];
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route.to_owned()));
    }
    if let Some((service, rpc_method)) = rpc {
        attributes.push(KeyValue::new("rpc.system", "grpc"));
        attributes.push(KeyValue::new("rpc.service", service.to_owned()));
        attributes.push(KeyValue::new("rpc.method", rpc_method.to_owned()));
    }
    if let Some(agent) = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    otel.set_attributes(attributes);
    let sc = otel.span_context();
    if sc.is_valid() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
        span.record("span_id", tracing::field::display(sc.span_id()));
    }
    span
}

/// Records the response's status on the request's span. Server errors mark the span
/// failed; a 4xx is the client's doing and leaves it unset, as the conventions say.
pub fn finish(span: &Span, status: u16) {
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(opentelemetry::trace::Status::error(format!(
            "HTTP {status}"
        )));
    }
}

/// Records which key made the request (its id; the secret never reaches a span).
pub fn record_key(key_id: Uuid) {
    if trace::enabled() {
        Span::current().set_attribute("opsd.api_key.id", key_id.to_string());
    }
}
