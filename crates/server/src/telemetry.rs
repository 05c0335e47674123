//! Trace export over OTLP (HTTP/protobuf), configured by `--otlp-endpoint` and the
//! standard `OTEL_*` variables. Without an endpoint nothing here runs: no layer is added
//! to the subscriber and no span is made (`opsd_store::trace`).
//!
//! Spans are batched by the SDK's batch processor, which exports from a thread of its
//! own. The exporter's HTTP client is hyper on Tokio, which needs a runtime to run on:
//! `OnRuntime` hands each export to the server's runtime and waits for it there.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// The running exporter; [`Telemetry::shutdown`] sends what is still queued.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Reads a sampler from `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (given as
/// arguments so that tests need not touch the environment). Unset: every trace is
/// sampled unless the caller's context says it is not (`parentbased_always_on`).
pub fn sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, String> {
    let ratio = || -> Result<f64, String> {
        let Some(arg) = arg else { return Ok(1.0) };
        arg.trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| {
                format!("OTEL_TRACES_SAMPLER_ARG: '{arg}' is not a ratio between 0 and 1")
            })
    };
    Ok(
        match name.map(str::trim).unwrap_or("parentbased_always_on") {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
            "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            "parentbased_traceidratio" => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
            }
            other => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER: '{other}' is not one of always_on, always_off, \
                 traceidratio, parentbased_always_on, parentbased_always_off, \
                 parentbased_traceidratio"
                ));
            }
        },
    )
}

/// Where spans go: `endpoint` is the OTLP base URL (`http://collector:4318`), to which
/// `/v1/traces` is added, as for `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn endpoint_url(endpoint: &str) -> Result<String, String> {
    let base = endpoint.trim().trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && base.starts_with("http://") => {
            Ok(format!("{base}/v1/traces"))
        }
        Some(_) if base.starts_with("https://") => Err(format!(
            "--otlp-endpoint: '{endpoint}': https is not supported by this build; \
             send to a local collector over http://"
        )),
        _ => Err(format!(
            "--otlp-endpoint: '{endpoint}' must be an http:// URL such as http://127.0.0.1:4318"
        )),
    }
}

impl Telemetry {
    /// Starts exporting to `endpoint` (see [`endpoint_url`]) as `service_name`; must be
    /// called inside the Tokio runtime that will carry the exports.
    pub fn start(endpoint: &str, service_name: &str, sampler: Sampler) -> Result<Self, String> {
        let url = endpoint_url(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("--otlp-endpoint: {e}"))?;
        let exporter = OnRuntime {
            inner: Arc::new(exporter),
            runtime: tokio::runtime::Handle::current(),
        };
        let resource = Resource::builder()
            .with_service_name(service_name.to_owned())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        opsd_store::trace::enable();
        Ok(Telemetry { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("opsd"))
            // Attributes a reader of opsd's spans has no use for, and that cost per span.
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
    }

    /// Exports the spans still queued and stops. Blocks: call it off the runtime's
    /// workers (`spawn_blocking`), which carry the last exports.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace export did not shut down cleanly");
        }
    }
}

/// A span exporter whose exports run on a Tokio runtime, whichever thread asks.
#[derive(Debug)]
struct OnRuntime<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.export(batch).await })
            .await
            .unwrap_or_else(|e| Err(OTelSdkError::InternalFailure(e.to_string())))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Before the exporter is shared: the provider sets the resource while building.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sampler_settings_name_the_variable() {
        let e = sampler(Some("sometimes"), None).err().unwrap_or_default();
        assert!(e.starts_with("OTEL_TRACES_SAMPLER:"), "{e}");
        let e = sampler(Some("traceidratio"), Some("2"))
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("OTEL_TRACES_SAMPLER_ARG:"), "{e}");
        assert!(sampler(Some("parentbased_traceidratio"), Some("0.25")).is_ok());
        assert!(sampler(None, None).is_ok());
    }

    #[test]
    fn the_endpoint_is_a_base_url() {
        assert_eq!(
            endpoint_url("http://127.0.0.1:4318/").as_deref(),
            Ok("http://127.0.0.1:4318/v1/traces")
        );
        assert!(endpoint_url("127.0.0.1:4318").is_err());
        assert!(endpoint_url("https://collector:4318").is_err());
    }
}
