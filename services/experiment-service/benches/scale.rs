//! `make bench-experiments` (second part): experiment-service at the issue's scale, on a fresh
//! PostgreSQL database (release build, generator in the same process).
//!
//! - **Propagation**: 200 flagd providers hold `SyncFlags` streams (what in-process providers
//!   use) on flag-service; the time from the `StartExperiment` call to each provider receiving
//!   the flag with the experiment's rule.
//! - **Results at scale**: 1,000,000 units × 3 arms × 5 metrics (binomial, mean with CUPED, two
//!   means and their ratio), exposed and fed through `LogExposures`/`LogEvents`; `GetResults`
//!   latency once the aggregator has folded everything, then the time to rebuild every
//!   aggregate from raw events after a metric changes.
//!
//! Writes bench/results/experiment-service-scale.json. `EXPERIMENT_BENCH_QUICK=1`: 20,000 units.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    authed, percentile,
    recount::{metric_of_each_kind, now_ms},
};
use switchyard_api::{
    experiments::v1::{self as pb, experiment_service_client::ExperimentServiceClient},
    flagd::sync::v1::{SyncFlagsRequest, flag_sync_service_client::FlagSyncServiceClient},
};
use switchyard_platform::testing;
use tonic::transport::Channel;

const PROVIDERS: usize = 200;
const BATCH: usize = 500;
const GENERATORS: usize = 4;
const WARM_UP_CALLS: usize = 20;
const RESULT_CALLS: usize = 1_000;
const DAY_MS: i64 = 86_400_000;
const ARMS: [&str; 3] = ["control", "one-click", "express"];

fn rounded(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

fn timestamp(ms: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Metrics and a draft experiment of three arms on flag `checkout`.
async fn define(service: &support::Service) {
    let keys = &service.keys;
    service.create_flag("checkout", &ARMS).await;
    for (id, metric) in metric_of_each_kind() {
        let body = json!({"metricId": id, "metric": metric}).to_string();
        let (status, answer) = service
            .call(&keys.editor, "POST", "/v1/projects/shop/metrics", &body)
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let experiment = json!({"experimentId": "checkout", "experiment": {"flag": "checkout", "environments": ["prod"],
        "arms": [{"variant": "control", "weight": 1}, {"variant": "one-click", "weight": 1}, {"variant": "express", "weight": 1}],
        "primaryMetrics": ["purchase", "revenue"], "secondaryMetrics": ["items-per-session", "items", "sessions"]}});
    let (status, answer) = service
        .call(
            &keys.editor,
            "POST",
            "/v1/projects/shop/experiments",
            &experiment.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
}

/// Starts the experiment with `PROVIDERS` SyncFlags streams open; per provider, ms from the
/// start call to the flag with the experiment's rule.
async fn propagation(service: &support::Service) -> Vec<f64> {
    let mut streams = Vec::with_capacity(PROVIDERS);
    for _ in 0..PROVIDERS {
        let channel = testing::grpc_channel(&service.flags.running);
        let request = SyncFlagsRequest {
            selector: service.keys.sdk_prod.clone(),
            ..Default::default()
        };
        let mut stream = FlagSyncServiceClient::new(channel)
            .sync_flags(request)
            .await
            .unwrap()
            .into_inner();
        // The flags as they are: every provider is connected and current before the start.
        let first = stream.message().await.unwrap().unwrap();
        assert!(!first.flag_configuration.contains("checkout/arms/"));
        streams.push(stream);
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(PROVIDERS);
    for mut stream in streams {
        tasks.push(tokio::spawn(async move {
            loop {
                let message = stream.message().await.unwrap().expect("the stream stays open");
                if message.flag_configuration.contains("checkout/arms/") {
                    return started.elapsed().as_secs_f64() * 1000.0;
                }
            }
        }));
    }
    let (status, answer) = service
        .call(
            &service.keys.publisher,
            "POST",
            "/v1/projects/shop/experiments/checkout:start",
            "{}",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut latencies = Vec::with_capacity(PROVIDERS);
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// Exposes every unit (arm by unit number) in batches of `BATCH`, `GENERATORS` at a time.
async fn expose(client: &ExperimentServiceClient<Channel>, key: &str, units: usize) {
    let mut tasks = Vec::new();
    for generator in 0..GENERATORS {
        let mut client = client.clone();
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            for start in (generator * BATCH..units).step_by(GENERATORS * BATCH) {
                let exposures = (start..(start + BATCH).min(units))
                    .map(|i| pb::Exposure {
                        id: format!("x{i}"),
                        experiment: "checkout".into(),
                        unit: format!("u{i}"),
                        variant: ARMS[i % 3].into(),
                        ..Default::default()
                    })
                    .collect();
                let request = pb::LogExposuresRequest {
                    parent: "projects/shop".into(),
                    exposures,
                };
                loop {
                    match client.log_exposures(authed(&key, request.clone())).await {
                        Ok(_) => break,
                        Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(status) => panic!("LogExposures failed: {status}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// A unit's events: revenue before exposure (CUPED) and after, sessions and items, and a
/// purchase for every third unit.
fn events_of(i: usize, now: i64) -> Vec<pb::Event> {
    let unit = format!("u{i}");
    let event = |kind: &str, name: &str, value: f64, time: i64| pb::Event {
        id: format!("{kind}{i}"),
        name: name.into(),
        unit: unit.clone(),
        value: Some(value),
        time: Some(timestamp(time)),
        ..Default::default()
    };
    let lift = 1.0 + 0.05 * (i % 3) as f64;
    let mut events = vec![
        event("b", "revenue", (i % 50) as f64, now - 2 * DAY_MS),
        event("r", "revenue", ((i % 50) as f64 * 0.8 + (i % 37) as f64) * lift, now),
        event("s", "session", (1 + i % 4) as f64, now),
        event("i", "item", (i % 7) as f64, now),
    ];
    if i.is_multiple_of(3) {
        events.push(event("p", "purchase", 1.0, now));
    }
    events
}

/// Sends every unit's events in batches of `BATCH`; returns (events, seconds).
async fn feed(client: &ExperimentServiceClient<Channel>, key: &str, units: usize) -> (usize, f64) {
    let began = Instant::now();
    let now = now_ms();
    let mut tasks = Vec::new();
    for generator in 0..GENERATORS {
        let mut client = client.clone();
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            let mut pending = Vec::with_capacity(BATCH + 8);
            let mut flush = async |events: Vec<pb::Event>| {
                let request = pb::LogEventsRequest {
                    parent: "projects/shop".into(),
                    events,
                };
                loop {
                    match client.log_events(authed(&key, request.clone())).await {
                        Ok(answer) => return answer.into_inner().stored as usize,
                        Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(status) => panic!("LogEvents failed: {status}"),
                    }
                }
            };
            for i in (generator..units).step_by(GENERATORS) {
                pending.extend(events_of(i, now));
                if pending.len() >= BATCH {
                    sent += flush(std::mem::take(&mut pending)).await;
                }
            }
            if !pending.is_empty() {
                sent += flush(pending).await;
            }
            sent
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await.unwrap();
    }
    (sent, began.elapsed().as_secs_f64())
}

/// Waits until nothing acknowledged is left to fold and no rebuild runs; seconds waited.
async fn settle(service: &support::Service) -> f64 {
    let began = Instant::now();
    let path = "/v1/projects/shop/experiments/checkout/results";
    loop {
        let (_, results) = service.call(&service.keys.viewer, "GET", path, "").await;
        if results["pendingBatches"] == "0" && results["rebuild"].is_null() {
            return began.elapsed().as_secs_f64();
        }
        assert!(began.elapsed() < Duration::from_secs(3_600), "{results}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn results_latencies(client: &ExperimentServiceClient<Channel>, key: &str) -> (Vec<f64>, pb::Results) {
    let mut client = client.clone();
    let mut latencies = Vec::with_capacity(RESULT_CALLS);
    let mut last = pb::Results::default();
    for call in 0..WARM_UP_CALLS + RESULT_CALLS {
        let request = authed(
            key,
            pb::GetResultsRequest {
                name: "projects/shop/experiments/checkout".into(),
                phase: 0,
                dimension: String::new(),
            },
        );
        let started = Instant::now();
        last = client.get_results(request).await.unwrap().into_inner();
        if call >= WARM_UP_CALLS {
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    (latencies, last)
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("EXPERIMENT_BENCH_QUICK").is_ok();
    let units = if quick { 20_000 } else { 1_000_000 };
    let (mut settings, keys, flags, dir) = support::prepared(support::Backend::Postgres).await;
    settings.limits.per_principal_rps = 10_000_000;
    let service = support::start(settings, keys, flags, dir).await;
    define(&service).await;

    println!("starting the experiment with {PROVIDERS} flagd providers (SyncFlags) connected…");
    let propagated = propagation(&service).await;
    println!(
        "propagation to {PROVIDERS} providers: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&propagated, 0.5),
        percentile(&propagated, 0.99),
        propagated[propagated.len() - 1]
    );

    let client = ExperimentServiceClient::new(service.grpc());
    let key = service.keys.editor.clone();
    println!("exposing {units} units…");
    let exposing = Instant::now();
    expose(&client, &key, units).await;
    let exposure_seconds = exposing.elapsed().as_secs_f64();
    println!("feeding their events…");
    let (events, feed_seconds) = feed(&client, &key, units).await;
    println!(
        "{events} events in {feed_seconds:.1} s ({:.0}/s); folding…",
        events as f64 / feed_seconds
    );
    let fold_seconds = settle(&service).await;
    println!("folded {fold_seconds:.1} s after the last acknowledgement");

    let (latencies, results) = results_latencies(&client, &service.keys.viewer).await;
    let counted: i64 = results.arms.iter().map(|arm| arm.units).sum();
    assert_eq!(counted, units as i64, "every unit counted: {:?}", results.arms);
    assert_eq!(results.metrics.len(), 5);
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!("GetResults, {units} units × 3 arms × 5 metrics: p50 {p50:.2} ms, p99 {p99:.2} ms");

    // Rebuild: revenue gets a cap; every unit of the experiment is recounted from raw events.
    let capped = json!({"metric": {"type": "METRIC_TYPE_MEAN", "event": "revenue", "cuped": {"enabled": true},
        "capping": {"type": "CAPPING_TYPE_ABSOLUTE", "value": 40.0}}});
    let rebuild_began = Instant::now();
    let (status, answer) = service
        .call(
            &service.keys.editor,
            "PUT",
            "/v1/projects/shop/metrics/revenue",
            &capped.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    settle(&service).await;
    let rebuild_seconds = rebuild_began.elapsed().as_secs_f64();
    println!("rebuild of {units} units after revenue changed: {rebuild_seconds:.1} s");

    // A full rebuild: a dimension added to the running experiment recounts every metric.
    let path = "/v1/projects/shop/experiments/checkout";
    let (_, experiment) = service.call(&service.keys.viewer, "GET", path, "").await;
    let mut changed = experiment.clone();
    changed["dimensions"] = json!(["country"]);
    let body = json!({"experiment": changed, "etag": experiment["etag"]}).to_string();
    let full_began = Instant::now();
    let (status, answer) = service.call(&service.keys.editor, "PUT", path, &body).await;
    assert_eq!(status, 200, "{answer}");
    settle(&service).await;
    let full_seconds = full_began.elapsed().as_secs_f64();
    println!("rebuild of {units} units × 5 metrics after a dimension was added: {full_seconds:.1} s");

    let document = json!({
        "what": "experiment-service on PostgreSQL (fresh database) beside flag-service, release build, generators and providers in the same process",
        "machine": testing::machine(),
        "quick": quick,
        "propagation": {
            "providers": PROVIDERS,
            "protocol": "flagd sync.v1 SyncFlags (in-process providers), one connection each",
            "from": "the StartExperiment call",
            "to": "each provider receiving the flag with the experiment's rule",
            "p50_ms": rounded(percentile(&propagated, 0.5), 1),
            "p99_ms": rounded(percentile(&propagated, 0.99), 1),
            "max_ms": rounded(propagated[propagated.len() - 1], 1),
            "target_p99_ms": 100,
        },
        "load": {
            "units": units,
            "arms": 3,
            "exposure_seconds": rounded(exposure_seconds, 1),
            "events": events,
            "event_seconds": rounded(feed_seconds, 1),
            "fold_seconds_after_last_ack": rounded(fold_seconds, 1),
        },
        "get_results": {
            "units": units,
            "arms": 3,
            "metrics": 5,
            "metric_kinds": "binomial, mean with CUPED, mean, mean, ratio",
            "warm_up_calls": WARM_UP_CALLS,
            "calls": RESULT_CALLS,
            "p50_ms": rounded(p50, 3),
            "p99_ms": rounded(p99, 3),
            "target_p99_ms": 50,
        },
        "rebuild": {
            "units": units,
            "after": "revenue (mean with CUPED) got an absolute cap: its rows recounted from its events",
            "metrics_recounted": 1,
            "seconds": rounded(rebuild_seconds, 1),
            "target_seconds": 60,
        },
        "rebuild_everything": {
            "units": units,
            "after": "a dimension was added to the running experiment: every metric and the slices recounted",
            "metrics_recounted": 5,
            "seconds": rounded(full_seconds, 1),
        },
    });
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/experiment-service-scale.json");
    std::fs::write(&path, serde_json::to_string_pretty(&document).unwrap() + "\n").unwrap();
    println!("wrote {}", path.display());
    service.stop().await;
}
