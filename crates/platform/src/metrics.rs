//! Prometheus metrics for one service instance: request counts and latency histograms for
//! gRPC (by method and code) and HTTP (by route and status). Each service has its own
//! registry, so `switchyard dev` still shows each service's figures on its own port.

use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Instant,
};

use futures::future::{BoxFuture, FutureExt};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tower::{Layer, Service};
use tracing::Instrument;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    pub method: String,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub status: u16,
}

/// The metrics of one service. Domain crates register their own figures on `registry`.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub grpc_handled: Family<GrpcLabels, Counter>,
    pub grpc_latency: Family<GrpcLabels, Histogram>,
    pub http_handled: Family<HttpLabels, Counter>,
    pub http_latency: Family<HttpLabels, Histogram>,
    pub in_flight: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Metrics {
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let grpc_handled = Family::<GrpcLabels, Counter>::default();
        let grpc_latency =
            Family::<GrpcLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let http_handled = Family::<HttpLabels, Counter>::default();
        let http_latency =
            Family::<HttpLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let in_flight = Gauge::default();
        let info = Family::<Vec<(String, String)>, Gauge>::default();
        info.get_or_create(&vec![
            ("service".to_owned(), service.to_owned()),
            ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ])
        .set(1);
        registry.register("build_info", "Service name and version", info);
        registry.register(
            "grpc_server_handled",
            "gRPC calls completed, by method and code",
            grpc_handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "gRPC call latency until response headers",
            grpc_latency.clone(),
        );
        registry.register(
            "http_server_requests",
            "HTTP requests completed, by method and status",
            http_handled.clone(),
        );
        registry.register(
            "http_server_request_seconds",
            "HTTP request latency until response headers",
            http_latency.clone(),
        );
        registry.register("grpc_server_in_flight", "gRPC calls being handled", in_flight.clone());
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            grpc_handled,
            grpc_latency,
            http_handled,
            http_latency,
            in_flight,
        }
    }

    /// Lets a domain crate add its own metric.
    pub fn register(&self, name: &str, help: &str, metric: impl prometheus_client::registry::Metric) {
        let mut registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        registry.register(name, help, metric);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Counts gRPC calls. The code is read from the response headers (errors are sent as
/// trailers-only responses); calls whose status only arrives in trailers count as OK.
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer(pub Metrics);

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, R> Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let metrics = self.metrics.clone();
        let span = crate::telemetry::request_span("grpc", &request);
        let started = Instant::now();
        metrics.in_flight.inc();
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        async move {
            let result = future.await;
            metrics.in_flight.dec();
            let code = match &result {
                Ok(response) => {
                    tonic::Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |s| s.code())
                }
                Err(_) => tonic::Code::Internal,
            };
            let labels = GrpcLabels {
                method,
                code: code_name(code),
            };
            metrics.grpc_handled.get_or_create(&labels).inc();
            metrics
                .grpc_latency
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            result
        }
        .instrument(span)
        .boxed()
    }
}

/// A status code's name as tonic spells it (`NotFound`), without formatting one per call.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "Ok",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}
