//! The Prometheus metrics opsd exports on `/metrics` (OpenMetrics text, via the official
//! `prometheus-client` crate). One [`Metrics`] per server, shared by the request
//! middleware (`http::request_metrics`), the live-operations machinery and its background tasks.
//! Labels are bounded: routes are the router's patterns, never raw paths.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Labels of a finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route pattern, e.g. `/v1/operations/{operation_id}`.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of a request's latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route pattern.
    pub route: String,
}

/// Labels of a finished gRPC call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// `service/Method`, e.g. `google.longrunning.Operations/GetOperation`.
    pub method: String,
    /// The gRPC status code's name, e.g. `OK`, `NOT_FOUND`.
    pub code: String,
}

/// Labels of a gRPC call's latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcMethodLabels {
    /// `service/Method`.
    pub method: String,
}

/// Labels of a supervised worker.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    /// The worker's name, e.g. `sqlite-writer` (`opsd_store::supervise`).
    pub worker: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;
type GrpcLatencyFamily = Family<GrpcMethodLabels, Histogram, fn() -> Histogram>;

/// Every metric opsd exports, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests waiting in `…/wait` right now.
    pub waiters: Gauge,
    /// Open watch streams.
    pub watch_streams: Gauge,
    /// Leases held, refreshed from the store on every scrape.
    pub leases_held: Gauge,
    /// Tokio tasks alive (connections, requests, streams, background tasks), refreshed
    /// on every scrape: a number that keeps growing under steady load is a leak.
    pub tasks: Gauge,
    /// Leases that ran out and turned their operation `unknown`.
    pub lease_expirations: Counter,
    /// Operations deleted by retention.
    pub retention_deleted: Counter,
    /// Times this process may have missed other processes' changes (its listening
    /// connection to PostgreSQL was re-established); refreshed from the store per scrape.
    pub feed_gaps: Counter,
    /// Changes the feed read back from the store instead of taking them from this
    /// process's writer (PostgreSQL); refreshed from the store per scrape.
    pub feed_store_reads: Counter,
    pub write_batches_retried: Counter,
    pub write_batches_restamped: Counter,
    /// Reads answered from the read cache, refreshed from it on every scrape.
    pub read_cache_hits: Counter,
    /// Reads the read cache could not answer (they read the store).
    pub read_cache_misses: Counter,
    /// Restarts of each supervised worker after a panic, refreshed on every scrape.
    pub worker_restarts: Family<WorkerLabels, Counter>,
    /// Log lines the log's output refused (a full disk), refreshed on every scrape.
    pub log_write_errors: Counter,
    /// Log lines dropped because the log thread was behind, refreshed on every scrape.
    pub log_lines_dropped: Counter,
    /// Finished requests by method, route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to the response head by method and route (a watch stream counts until its
    /// head is sent, a wait until it answers).
    pub request_duration: LatencyFamily,
    /// Finished gRPC calls by method and status code.
    pub grpc_requests: Family<GrpcLabels, Counter>,
    /// Time of a gRPC call to its status, by method.
    pub grpc_request_duration: GrpcLatencyFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~131 s: covers fast reads and the longest wait (120 s).
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

impl Metrics {
    /// A registry with every metric registered at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("opsd");
        let waiters = Gauge::default();
        let watch_streams = Gauge::default();
        let leases_held = Gauge::default();
        let tasks = Gauge::default();
        let lease_expirations = Counter::default();
        let retention_deleted = Counter::default();
        let feed_gaps = Counter::default();
        let feed_store_reads = Counter::default();
        let write_batches_retried = Counter::default();
        let write_batches_restamped = Counter::default();
        let read_cache_hits = Counter::default();
        let read_cache_misses = Counter::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let worker_restarts = Family::<WorkerLabels, Counter>::default();
        let log_write_errors = Counter::default();
        let log_lines_dropped = Counter::default();
        let request_duration = LatencyFamily::new_with_constructor(latency_histogram);
        registry.register(
            "waiters",
            "Requests waiting for an operation to finish",
            waiters.clone(),
        );
        registry.register(
            "watch_streams",
            "Open watch (Server-Sent Events) streams",
            watch_streams.clone(),
        );
        registry.register(
            "leases_held",
            "Operations leased by a worker",
            leases_held.clone(),
        );
        registry.register("tasks", "Tokio tasks alive", tasks.clone());
        registry.register(
            "lease_expirations",
            "Leases that ran out and turned their operation unknown",
            lease_expirations.clone(),
        );
        registry.register(
            "retention_deleted_operations",
            "Terminal operations deleted by retention",
            retention_deleted.clone(),
        );
        registry.register(
            "feed_gaps",
            "Times the change feed may have missed notifications of other processes (caught up from the store)",
            feed_gaps.clone(),
        );
        registry.register(
            "feed_store_reads",
            "Changes the change feed read from the store: other processes' changes, and any of this process's it did not get from its writer (PostgreSQL)",
            feed_store_reads.clone(),
        );
        registry.register(
            "write_batches_retried",
            "Write batch attempts run again because another process's transaction got in the way (PostgreSQL)",
            write_batches_retried.clone(),
        );
        registry.register(
            "write_batches_restamped",
            "Write batches that took a later stamp another process had committed instead of their own time (PostgreSQL)",
            write_batches_restamped.clone(),
        );
        registry.register(
            "read_cache_hits",
            "Reads (GET of an operation, gRPC GetOperation, Deployment Manager operations.get, Nirvana list pages) answered from the read cache",
            read_cache_hits.clone(),
        );
        registry.register(
            "read_cache_misses",
            "Reads the read cache could not answer, which read the store",
            read_cache_misses.clone(),
        );
        registry.register(
            "worker_restarts",
            "Restarts of a long-lived worker after a panic",
            worker_restarts.clone(),
        );
        registry.register(
            "log_write_errors",
            "Log lines dropped because the log output refused them (e.g. a full disk)",
            log_write_errors.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log output was too slow",
            log_lines_dropped.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response head",
            Unit::Seconds,
            request_duration.clone(),
        );
        let grpc_requests = Family::<GrpcLabels, Counter>::default();
        let grpc_request_duration = GrpcLatencyFamily::new_with_constructor(latency_histogram);
        registry.register(
            "grpc_requests",
            "gRPC calls by method and status code",
            grpc_requests.clone(),
        );
        registry.register_with_unit(
            "grpc_request_duration",
            "Time of a gRPC call to its status, by method",
            Unit::Seconds,
            grpc_request_duration.clone(),
        );
        Self {
            registry,
            waiters,
            watch_streams,
            leases_held,
            tasks,
            lease_expirations,
            retention_deleted,
            feed_gaps,
            feed_store_reads,
            write_batches_retried,
            write_batches_restamped,
            read_cache_hits,
            read_cache_misses,
            worker_restarts,
            log_write_errors,
            log_lines_dropped,
            requests,
            request_duration,
            grpc_requests,
            grpc_request_duration,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Adds one to a gauge for as long as it lives (a waiter, a stream).
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    /// Increments `gauge` until the guard is dropped.
    pub fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exported() {
        let m = Metrics::new();
        {
            let _w = GaugeGuard::new(&m.waiters);
            let _s = GaugeGuard::new(&m.watch_streams);
            assert_eq!((m.waiters.get(), m.watch_streams.get()), (1, 1));
        }
        assert_eq!((m.waiters.get(), m.watch_streams.get()), (0, 0));
        m.lease_expirations.inc();
        // Labelled families appear with their first series.
        let labels = RouteLabels {
            method: "GET".into(),
            route: "/healthz".into(),
        };
        m.request_duration.get_or_create(&labels).observe(0.002);
        let text = m.encode().expect("encode");
        for line in [
            "opsd_waiters 0",
            "opsd_watch_streams 0",
            "opsd_leases_held 0",
            "opsd_lease_expirations_total 1",
            "opsd_retention_deleted_operations_total 0",
            "opsd_log_write_errors_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.contains(
            "opsd_http_request_duration_seconds_bucket{le=\"0.002\",method=\"GET\",route=\"/healthz\"} 1"
        ), "{text}");
    }
}
