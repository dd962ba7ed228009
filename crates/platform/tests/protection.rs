//! Limits answer with statuses instead of queueing: calls past the concurrency limit are
//! shed with UNAVAILABLE, calls past the deadline end with DEADLINE_EXCEEDED, anonymous
//! callers are rate limited per IP — the same on gRPC and on transcoded HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use switchyard_api::testing::v1::{GetItemRequest, SleepRequest, transcode_test_client::TranscodeTestClient};
use switchyard_platform::testing::http;
use tonic::Code;

#[tokio::test]
async fn calls_beyond_the_concurrency_limit_are_shed() {
    let (mut settings, dir) = support::settings();
    settings.limits.max_concurrent_requests = 1;
    let server = support::start_with(settings, dir).await;
    let mut busy = TranscodeTestClient::connect(server.grpc.clone()).await.unwrap();
    let in_flight = tokio::spawn(async move { busy.sleep(SleepRequest { millis: 600 }).await });
    tokio::time::sleep(Duration::from_millis(150)).await;

    let mut client = TranscodeTestClient::connect(server.grpc.clone()).await.unwrap();
    let shed = client.get_item(GetItemRequest::default()).await.unwrap_err();
    assert_eq!(shed.code(), Code::Unavailable);
    assert_eq!(http("GET", &server.url("/v1/items/x"), &[], "").await.status, 503);

    assert!(in_flight.await.unwrap().is_ok(), "the admitted call is unaffected");
    assert!(
        client.get_item(GetItemRequest::default()).await.is_ok(),
        "capacity is back"
    );
    server.stop().await;
}

#[tokio::test]
async fn calls_past_the_deadline_end_with_deadline_exceeded() {
    let (mut settings, dir) = support::settings();
    settings.limits.request_timeout_ms = 100;
    let server = support::start_with(settings, dir).await;
    let mut client = TranscodeTestClient::connect(server.grpc.clone()).await.unwrap();
    let slow = client.sleep(SleepRequest { millis: 1_000 }).await.unwrap_err();
    assert_eq!(slow.code(), Code::DeadlineExceeded);
    let over_http = http("POST", &server.url("/v1/sleep"), &[], r#"{"millis": 1000}"#).await;
    assert_eq!(over_http.status, 504);
    assert!(client.sleep(SleepRequest { millis: 10 }).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn anonymous_callers_are_limited_per_ip() {
    let (mut settings, dir) = support::settings();
    settings.limits.per_ip_rps = 2;
    let server = support::start_with(settings, dir).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(http("GET", &server.url("/v1/items/x"), &[], "").await.status);
    }
    assert_eq!(statuses[0], 200);
    let limited = statuses.iter().position(|s| *s == 429).expect("some calls are limited");
    assert!(limited >= 2, "the burst is allowed first: {statuses:?}");
    let response = http("GET", &server.url("/v1/items/x"), &[], "").await;
    assert_eq!(
        response.json()["details"][0]["@type"],
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    server.stop().await;
}
