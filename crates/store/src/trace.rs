//! Tracing hooks shared by the HTTP layer and both backends' writers.
//!
//! Spans exist only while export is on ([`enable`], called once at start-up when an
//! OTLP endpoint is configured). Off, every hook here is one relaxed atomic load and
//! nothing is created: no span, no link, no allocation.
//!
//! A writer commits many requests' writes in one transaction. Each write carries the
//! span of the store call that queued it ([`WriteSpan`]); the writer opens one span for
//! the batch ([`BatchSpan`]) and every write's span gets a link to it. The links go from
//! the requests to the batch, not the other way: a batch may carry hundreds of writes
//! and a span keeps at most 128 links, while a write belongs to exactly one batch.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opsd_domain::TraceContext;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns span creation on for the life of the process (export is configured).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are being made and exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `cx` as an OpenTelemetry span context from another process.
pub fn remote_span_context(cx: &TraceContext) -> SpanContext {
    let state = cx
        .tracestate
        .as_deref()
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    SpanContext::new(
        TraceId::from_bytes(cx.trace_id),
        SpanId::from_bytes(cx.span_id),
        TraceFlags::new(cx.flags),
        true,
        state,
    )
}

/// `cx` as the parent of a span.
pub fn parent(cx: &TraceContext) -> opentelemetry::Context {
    opentelemetry::Context::new().with_remote_span_context(remote_span_context(cx))
}

/// The trace context of `span`, to store or to propagate; `None` when export is off or
/// the span has no valid context.
pub fn context_of(span: &Span) -> Option<TraceContext> {
    if !enabled() {
        return None;
    }
    let otel = span.context();
    let sc = otel.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    let state = sc.trace_state().header();
    Some(TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
        tracestate: (!state.is_empty()).then_some(state),
    })
}

/// Links the current span to the context an operation was created in, so that a trace
/// UI leads from a claim, a heartbeat or the final update back to the creating request.
pub fn link_to_creation(created_in: Option<&TraceContext>) {
    if let (true, Some(cx)) = (enabled(), created_in) {
        Span::current().add_link(remote_span_context(cx));
    }
}

/// The span of one write on its way to a writer (empty when export is off or the write
/// was not made inside a span).
#[derive(Default)]
pub struct WriteSpan(Option<Span>);

impl WriteSpan {
    /// The current span, if spans are on and one is entered.
    pub fn current() -> WriteSpan {
        if !enabled() {
            return WriteSpan(None);
        }
        let span = Span::current();
        WriteSpan((!span.is_none()).then_some(span))
    }
}

/// The span of one writer batch; closed when dropped.
pub struct BatchSpan(Option<Span>);

impl BatchSpan {
    /// Opens the batch's span and links every write's span to it. Nothing is made when
    /// no write carries a span.
    pub fn start<'a>(
        backend: &'static str,
        writes: impl ExactSizeIterator<Item = &'a WriteSpan> + Clone,
    ) -> BatchSpan {
        if !enabled() || writes.clone().all(|w| w.0.is_none()) {
            return BatchSpan(None);
        }
        let span = tracing::info_span!(
            parent: None,
            "store.batch",
            otel.kind = "internal",
            db.system.name = backend,
            opsd.batch.writes = writes.len(),
        );
        let batch = span.context().span().span_context().clone();
        for write in writes.filter_map(|w| w.0.as_ref()) {
            write.add_link(batch.clone());
        }
        BatchSpan(Some(span))
    }

    /// Marks the batch failed (its transaction rolled back).
    pub fn failed(&self, why: &str) {
        if let Some(span) = &self.0 {
            span.set_status(opentelemetry::trace::Status::error(why.to_owned()));
        }
    }
}
