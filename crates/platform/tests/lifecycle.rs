//! A hosted service on real sockets: health (grpc.health.v1 and HTTP), reflection,
//! gRPC-Web, metrics, server-streaming over HTTP, and a graceful drain on shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use switchyard_api::testing::v1::{SleepRequest, TicksRequest, transcode_test_client::TranscodeTestClient};
use switchyard_platform::testing::{get, http};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn health(grpc: &str, service: &str) -> i32 {
    let mut client = HealthClient::new(channel(grpc).await);
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test]
async fn health_readiness_metrics_and_reflection() {
    let server = support::start().await;
    assert_eq!(health(&server.grpc, "").await, ServingStatus::Serving as i32);
    assert_eq!(
        health(&server.grpc, "switchyard.testing.v1.TranscodeTest").await,
        ServingStatus::Serving as i32
    );
    assert_eq!(get(&server.url("/healthz")).await.status, 200);
    assert_eq!(get(&server.url("/readyz")).await.status, 200);

    let _ = get(&server.url("/v1/items/m")).await;
    let metrics = get(&server.url("/metrics")).await.text();
    assert!(metrics.contains("switchyard_grpc_server_handled_total{method=\"/switchyard.testing.v1.TranscodeTest/GetItem\",code=\"Ok\"} 1"), "{metrics}");
    assert!(metrics.contains("switchyard_http_server_request_seconds_bucket"));

    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel(&server.grpc).await);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = responses.message().await.unwrap().unwrap();
    let Some(tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"switchyard.testing.v1.TranscodeTest".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("config")),
        "only this binary's services: {names:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn grpc_web_over_http1() {
    let server = support::start().await;
    // An empty GetItemRequest: one uncompressed frame of length 0.
    let frame = vec![0u8, 0, 0, 0, 0];
    let url = format!("{}/switchyard.testing.v1.TranscodeTest/GetItem", server.grpc);
    let response = http(
        "POST",
        &url,
        &[("content-type", "application/grpc-web+proto"), ("x-grpc-web", "1")],
        frame,
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(
        response.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web")
    );
    // The body carries the message frame, then a trailer frame (flag 0x80) with grpc-status.
    let text = String::from_utf8_lossy(&response.body);
    assert!(text.contains("GetItem") && text.contains("grpc-status:0"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn server_streaming_over_http_is_newline_delimited_json() {
    let server = support::start().await;
    let response = get(&server.url("/v1/ticks?count=3&intervalMillis=1")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = response
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let methods: Vec<&str> = lines.iter().map(|l| l["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["tick-0", "tick-1", "tick-2"]);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_calls_and_closes_streams_with_a_status() {
    let (mut settings, dir) = support::settings();
    settings.shutdown.drain_delay_ms = 400;
    let server = support::start_with(settings, dir).await;
    let grpc = server.grpc.clone();

    let mut sleeper = TranscodeTestClient::connect(grpc.clone()).await.unwrap();
    let in_flight = tokio::spawn(async move { sleeper.sleep(SleepRequest { millis: 700 }).await });
    let mut streamer = TranscodeTestClient::connect(grpc.clone()).await.unwrap();
    let mut stream = streamer
        .ticks(TicksRequest {
            count: 0,
            interval_millis: 20,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(50)).await;

    server.shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // During the drain delay: still answering, but no longer ready.
    assert_eq!(get(&server.url("/readyz")).await.status, 503);
    assert_eq!(health(&grpc, "").await, ServingStatus::NotServing as i32);

    let ended = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), tonic::Code::Unavailable);
    assert!(ended.message().contains("shutting down"));

    let http_addr = server.running.http_addr;
    server.running.wait().await;
    let finished = in_flight.await.unwrap();
    assert!(finished.is_ok(), "the in-flight call finished: {finished:?}");
    assert!(
        tokio::net::TcpStream::connect(http_addr).await.is_err(),
        "the HTTP port is closed"
    );
}
