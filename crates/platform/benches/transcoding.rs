//! Load generator: the same RPC called natively over gRPC and through the HTTP/JSON
//! transcoder, side by side in one run against one server on loopback, so the ratio is
//! what the transcoding layer costs. Results go to `bench/results/transcoding.json`.
//!
//! Run with `make bench` (or `cargo bench -p switchyard-platform --bench transcoding`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::json;
use switchyard_api::testing::v1::{GetItemRequest, Item, transcode_test_client::TranscodeTestClient};

const WARMUP: usize = 500;
const ROUNDS: usize = 5;
const CALLS_PER_ROUND: usize = 2_000;
const CONCURRENCY: usize = 16;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

#[derive(Clone)]
struct Callers {
    grpc: TranscodeTestClient<tonic::transport::Channel>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: String,
}

impl Callers {
    async fn grpc_call(&mut self) {
        let request = GetItemRequest {
            item: Some(Item {
                shelf: "s1".into(),
                name: "i1".into(),
                ..Item::default()
            }),
            ..GetItemRequest::default()
        };
        self.grpc.get_item(request).await.unwrap();
    }

    async fn http_call(&self) {
        let request = http::Request::get(&self.url).body(Full::new(Bytes::new())).unwrap();
        let response = self.http.request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.unwrap();
    }
}

async fn latencies(callers: &mut Callers, grpc: bool, calls: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        if grpc {
            callers.grpc_call().await
        } else {
            callers.http_call().await
        }
        out.push(started.elapsed());
    }
    out
}

async fn throughput(callers: &Callers, grpc: bool) -> f64 {
    let deadline = Instant::now() + THROUGHPUT_WINDOW;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let mut callers = callers.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    if grpc {
                        callers.grpc_call().await
                    } else {
                        callers.http_call().await
                    }
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / THROUGHPUT_WINDOW.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let (mut settings, dir) = support::settings();
    settings.limits.per_ip_rps = 1_000_000;
    settings.telemetry.log_filter = "error".into();
    let server = support::start_with(settings, dir).await;
    let mut callers = Callers {
        grpc: TranscodeTestClient::connect(server.grpc.clone()).await.unwrap(),
        http: Client::builder(TokioExecutor::new()).build_http(),
        url: server.url("/v1/shelves/s1/items/i1"),
    };
    latencies(&mut callers, true, WARMUP).await;
    latencies(&mut callers, false, WARMUP).await;

    // Alternate the two modes round by round so drift on a noisy machine hits both.
    let (mut grpc, mut http) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        grpc.extend(latencies(&mut callers, true, CALLS_PER_ROUND).await);
        http.extend(latencies(&mut callers, false, CALLS_PER_ROUND).await);
    }
    grpc.sort();
    http.sort();
    let grpc_rps = throughput(&callers, true).await;
    let http_rps = throughput(&callers, false).await;

    let (grpc_p50, http_p50) = (percentile(&grpc, 0.5), percentile(&http, 0.5));
    let result = json!({
        "benchmark": "transcoding",
        "what": "GetItem (path + nested fields) over loopback: native gRPC vs HTTP/JSON transcoded to the same gRPC stack",
        "machine": switchyard_platform::testing::machine(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "sequential_calls_per_mode": grpc.len(),
        "grpc_us": { "p50": grpc_p50, "p90": percentile(&grpc, 0.9), "p99": percentile(&grpc, 0.99) },
        "http_transcoded_us": { "p50": http_p50, "p90": percentile(&http, 0.9), "p99": percentile(&http, 0.99) },
        "p50_ratio_http_over_grpc": http_p50 / grpc_p50,
        "throughput_rps": { "concurrency": CONCURRENCY, "grpc": grpc_rps, "http_transcoded": http_rps },
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/transcoding.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap() + "\n").unwrap();
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    server.stop().await;
}
