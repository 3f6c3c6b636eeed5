//! Where log lines and spans go: stderr as text or JSON lines, and, in a
//! build with the `otel` feature, an OpenTelemetry collector.

#[cfg(feature = "otel")]
mod otlp;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How a log line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain text, coloured only on a terminal.
    Text,
    /// One JSON object per line, with the line's span, for a log pipeline.
    Json,
}

/// What the process's logging was set up with.
pub struct LogSettings<'a> {
    pub format: LogFormat,
    /// Levels when `RUST_LOG` is unset.
    pub default_level: &'a str,
    /// An OTLP/HTTP collector's base URL (`/v1/traces` is added), or none.
    pub otlp_endpoint: Option<&'a str>,
}

/// Keeps the span export running; [`Logs::finish`] sends what is left.
#[must_use = "finish() sends the spans still buffered"]
pub struct Logs {
    #[cfg(feature = "otel")]
    export: Option<otlp::Export>,
}

/// Installs the process's subscriber: the filter from `RUST_LOG` (else the
/// default level), lines on stderr, and the span export if asked for.
pub fn init(settings: LogSettings<'_>) -> anyhow::Result<Logs> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.default_level));
    let text = (settings.format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let json = (settings.format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
    });
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json);
    #[cfg(feature = "otel")]
    {
        let export = settings
            .otlp_endpoint
            .map(otlp::Export::start)
            .transpose()?;
        let layer = export.as_ref().map(otlp::Export::layer);
        registry.with(layer).init();
        if let Some(endpoint) = settings.otlp_endpoint {
            tracing::info!(endpoint, "spans are exported over OTLP");
        }
        Ok(Logs { export })
    }
    #[cfg(not(feature = "otel"))]
    {
        registry.init();
        if let Some(endpoint) = settings.otlp_endpoint {
            tracing::warn!(
                endpoint,
                "this flowhost was built without the `otel` feature: spans are not exported"
            );
        }
        Ok(Logs {})
    }
}

impl Logs {
    /// Sends the spans still buffered (waiting at most the export timeout).
    pub async fn finish(self) {
        #[cfg(feature = "otel")]
        if let Some(export) = self.export {
            export.finish().await;
        }
    }
}
