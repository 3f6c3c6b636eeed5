//! Span export to an OpenTelemetry collector: OTLP over HTTP with JSON
//! bodies. Spans are batched by a tokio task into a bounded queue (spans
//! beyond it are dropped, never buffered without end), and each export
//! waits at most [`EXPORT_TIMEOUT`].

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;

/// How long one batch may take to reach the collector.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running export: a tracer provider with its batching task.
pub(super) struct Export {
    provider: SdkTracerProvider,
}

impl Export {
    /// Starts exporting to `endpoint` (the collector's base URL). Needs a
    /// tokio runtime: the batching task runs on it.
    pub(super) fn start(endpoint: &str) -> anyhow::Result<Self> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        url::Url::parse(&url).with_context(|| format!("--otlp-endpoint {endpoint:?}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .context("setting up the OTLP span exporter")?;
        let batches =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("flowhost")
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(resource)
            .build();
        Ok(Self { provider })
    }

    /// The layer that turns flowhost's own spans into OpenTelemetry spans.
    /// Other crates' spans stay out: the exporter's HTTP client logs too,
    /// and its spans must not feed the export that made them.
    pub(super) fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("flowhost"))
            .with_filter(Targets::new().with_target("flowhost", LevelFilter::TRACE))
    }

    /// Flushes what is buffered and stops the batching task, giving up
    /// after [`EXPORT_TIMEOUT`] (a collector that does not answer must not
    /// hold the process). The SDK's shutdown blocks its thread until the
    /// task answers, so it runs on a blocking thread, not an async worker.
    pub(super) async fn finish(self) {
        let provider = self.provider;
        let shutdown = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(EXPORT_TIMEOUT, shutdown).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "the last spans were not exported"),
            Ok(Err(error)) => tracing::warn!(%error, "the span export did not stop cleanly"),
            Err(_) => tracing::warn!("the collector did not take the last spans in time"),
        }
    }
}
