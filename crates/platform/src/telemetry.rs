//! Logs and traces. `tracing` writes JSON (or pretty) logs to stderr; spans are exported over OTLP
//! when an endpoint is set. W3C trace context (`traceparent`, `tracestate`) is taken
//! from every incoming gRPC and HTTP request and injected into every outgoing gRPC call,
//! so one trace follows a request through the ecosystem.

use std::sync::OnceLock;

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

use crate::settings::{LogFormat, TelemetrySettings};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid setting `telemetry.log_filter`: {0}")]
    Filter(String),
    #[error("invalid setting `telemetry.otlp_endpoint`: {0}")]
    Exporter(String),
}

/// Installs the process-wide subscriber. The first call wins (`switchyard dev` hosts five
/// services in one process); later calls return Ok without changing anything.
pub fn init(service: &str, settings: &TelemetrySettings) -> Result<(), TelemetryError> {
    if PROVIDER.get().is_some() {
        return Ok(());
    }
    let filter = EnvFilter::try_new(&settings.log_filter).map_err(|error| TelemetryError::Filter(error.to_string()))?;
    let provider = tracer_provider(service, settings.otlp_endpoint.as_deref())?;
    let tracer = provider.tracer("switchyard");
    if PROVIDER.set(provider).is_err() {
        return Ok(());
    }
    // Per span, the layer's defaults would add thread and source-location attributes and read
    // the clock on every poll to track busy/idle time: a quarter of the CPU of a request served
    // from memory. The trace keeps what a reader uses: name, fields, timing, parentage.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_tracked_inactivity(false);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match settings.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
    Ok(())
}

/// Spans always get real trace ids (so context propagates and logs can be correlated);
/// they leave the process only when an OTLP endpoint is configured.
fn tracer_provider(service: &str, endpoint: Option<&str>) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = endpoint else {
        return Ok(builder.build());
    };
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
    Ok(builder.with_batch_exporter(exporter).build())
}

/// Flushes spans that are still buffered; call before the process exits.
pub fn flush() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.force_flush()
    {
        tracing::warn!(%error, "could not flush traces");
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The remote trace context carried by a request's headers.
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes the current span's trace context into outgoing headers.
pub fn inject(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// A span for one incoming request, parented on the caller's trace context.
pub fn request_span(protocol: &'static str, request: &http::Request<impl Sized>) -> tracing::Span {
    let path = request.uri().path();
    let span = tracing::info_span!(
        "request",
        otel.name = path,
        protocol,
        method = request.method().as_str(),
        path,
    );
    let _ = span.set_parent(extract(request.headers()));
    span
}

/// A tonic interceptor for outgoing calls: propagates the current trace context.
pub fn propagate(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let mut headers = http::HeaderMap::new();
    inject(&mut headers);
    for (name, value) in &headers {
        if let (Ok(value), Ok(key)) = (
            tonic::metadata::MetadataValue::try_from(value.as_bytes()),
            tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
        ) {
            request.metadata_mut().insert(key, value);
        }
    }
    Ok(request)
}
