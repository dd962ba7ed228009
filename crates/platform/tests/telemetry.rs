//! W3C trace context: a request's `traceparent` becomes the parent of the server span, and
//! outgoing gRPC calls made inside that span carry the same trace id onward.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchyard_platform::{
    settings::{LogFormat, TelemetrySettings},
    telemetry,
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn incoming_context_is_continued_on_outgoing_calls() {
    let settings = TelemetrySettings {
        log_format: LogFormat::Json,
        log_filter: "info".into(),
        otlp_endpoint: None,
    };
    telemetry::init("telemetry-test", &settings).unwrap();

    let incoming = http::Request::builder()
        .uri("/switchyard.x.v1.X/Get")
        .header("traceparent", TRACEPARENT)
        .body(())
        .unwrap();
    let span = telemetry::request_span("grpc", &incoming);
    let outgoing = span.in_scope(|| telemetry::propagate(tonic::Request::new(())).unwrap());
    let sent = outgoing
        .metadata()
        .get("traceparent")
        .expect("traceparent injected")
        .to_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace: {sent}");
    assert_ne!(parts[2], "00f067aa0ba902b7", "a new span id of our own: {sent}");
    assert_eq!(parts[3], "01", "sampled flag kept");

    let mut headers = http::HeaderMap::new();
    span.in_scope(|| telemetry::inject(&mut headers));
    assert_eq!(headers["traceparent"].to_str().unwrap(), sent);
}

#[test]
fn no_incoming_context_starts_a_new_trace() {
    let settings = TelemetrySettings {
        log_format: LogFormat::Pretty,
        log_filter: "info".into(),
        otlp_endpoint: None,
    };
    telemetry::init("telemetry-test", &settings).unwrap();
    let incoming = http::Request::builder().uri("/x").body(()).unwrap();
    let span = telemetry::request_span("http", &incoming);
    let mut headers = http::HeaderMap::new();
    span.in_scope(|| telemetry::inject(&mut headers));
    let sent = headers["traceparent"].to_str().unwrap();
    assert!(
        !sent.contains("4bf92f3577b34da6a3ce929d0e0e4736") && sent.starts_with("00-"),
        "{sent}"
    );
}
