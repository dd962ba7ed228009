//! `make bench-experiments`: experiment-service on a fresh PostgreSQL database (release build,
//! generator in the same process). Measures `LogEvents` in batches of 500 over gRPC — events
//! per second with every batch acknowledged durable — how long the aggregator then takes to
//! fold what was acknowledged, and `GetResults` latency on the experiment those events feed.
//! Writes bench/results/experiment-service.json. `EXPERIMENT_BENCH_QUICK=1` runs a short one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{authed, percentile};
use switchyard_api::experiments::v1::{self as pb, experiment_service_client::ExperimentServiceClient};
use switchyard_platform::testing;
use tonic::transport::Channel;

const BATCH: usize = 500;
const GENERATORS: usize = 8;
const WARM_UP_CALLS: usize = 20;
const RESULT_CALLS: usize = 1_000;

struct Scale {
    units: usize,
    seconds: u64,
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("EXPERIMENT_BENCH_QUICK").is_ok();
    let scale = if quick {
        Scale {
            units: 10_000,
            seconds: 10,
        }
    } else {
        Scale {
            units: 100_000,
            seconds: 60,
        }
    };
    let (mut settings, keys, flags, dir) = support::prepared(support::Backend::Postgres).await;
    // The generators and Assign callers share a few keys: no per-key rate limit here.
    settings.limits.per_principal_rps = 10_000_000;
    let service = support::start(settings, keys, flags, dir).await;
    let keys = service.keys.clone();
    service.create_flag("checkout", &["control", "treatment"]).await;
    for (id, metric) in [
        ("purchase", json!({"type": "METRIC_TYPE_BINOMIAL", "event": "purchase"})),
        (
            "revenue",
            json!({"type": "METRIC_TYPE_MEAN", "event": "revenue", "cuped": {"enabled": true}}),
        ),
    ] {
        let (status, _) = service
            .call(
                &keys.editor,
                "POST",
                "/v1/projects/shop/metrics",
                &json!({"metricId": id, "metric": metric}).to_string(),
            )
            .await;
        assert_eq!(status, 200);
    }
    let experiment = json!({"experimentId": "checkout", "experiment": {"flag": "checkout", "environments": ["prod"],
        "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}],
        "primaryMetrics": ["purchase", "revenue"]}});
    let (status, _) = service
        .call(
            &keys.editor,
            "POST",
            "/v1/projects/shop/experiments",
            &experiment.to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = service
        .call(
            &keys.publisher,
            "POST",
            "/v1/projects/shop/experiments/checkout:start",
            "{}",
        )
        .await;
    assert_eq!(status, 200);

    let channel: Channel = service.grpc();
    let client = ExperimentServiceClient::new(channel);
    println!("exposing {} units…", scale.units);
    for start in (0..scale.units).step_by(BATCH) {
        let exposures = (start..(start + BATCH).min(scale.units))
            .map(|i| pb::Exposure {
                id: format!("x{i}"),
                experiment: "checkout".into(),
                unit: format!("u{i}"),
                variant: if i.is_multiple_of(2) {
                    "control".into()
                } else {
                    "treatment".into()
                },
                ..Default::default()
            })
            .collect();
        let request = authed(
            &keys.editor,
            pb::LogExposuresRequest {
                parent: "projects/shop".into(),
                exposures,
            },
        );
        client.clone().log_exposures(request).await.unwrap();
    }

    println!("LogEvents for {} s with {GENERATORS} generators…", scale.seconds);
    let deadline = Instant::now() + Duration::from_secs(scale.seconds);
    let began = Instant::now();
    let mut tasks = Vec::new();
    for generator in 0..GENERATORS {
        let mut client = client.clone();
        let key = keys.editor.clone();
        let units = scale.units;
        tasks.push(tokio::spawn(async move {
            let mut sent = 0usize;
            let mut batch_number = 0usize;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let events = (0..BATCH)
                    .map(|i| {
                        let n = (batch_number * BATCH + i) * GENERATORS + generator;
                        let unit = format!("u{}", n % units);
                        if n.is_multiple_of(5) {
                            pb::Event {
                                id: format!("e{n}"),
                                name: "purchase".into(),
                                unit,
                                ..Default::default()
                            }
                        } else {
                            pb::Event {
                                id: format!("e{n}"),
                                name: "revenue".into(),
                                unit,
                                value: Some((n % 97) as f64),
                                ..Default::default()
                            }
                        }
                    })
                    .collect();
                let started = Instant::now();
                let request = authed(
                    &key,
                    pb::LogEventsRequest {
                        parent: "projects/shop".into(),
                        events,
                    },
                );
                match client.log_events(request).await {
                    Ok(answer) => sent += answer.into_inner().stored as usize,
                    Err(status) if status.code() == tonic::Code::ResourceExhausted => {}
                    Err(status) => panic!("LogEvents failed: {status}"),
                }
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                batch_number += 1;
            }
            (sent, latencies)
        }));
    }
    let mut stored = 0;
    let mut batch_latencies = Vec::new();
    for task in tasks {
        let (sent, latencies) = task.await.unwrap();
        stored += sent;
        batch_latencies.extend(latencies);
    }
    let elapsed = began.elapsed().as_secs_f64();
    let rate = stored as f64 / elapsed;
    batch_latencies.sort_by(f64::total_cmp);
    println!(
        "ingestion: {rate:.0} events/s acknowledged ({stored} in {elapsed:.1} s), batch p50 {:.1} ms, p99 {:.1} ms",
        percentile(&batch_latencies, 0.5),
        percentile(&batch_latencies, 0.99)
    );

    // How far behind the aggregator is: waited for up to FOLD_WAIT, then reported as it stands.
    const FOLD_WAIT: Duration = Duration::from_secs(60);
    let fold_began = Instant::now();
    let results_path = "/v1/projects/shop/experiments/checkout/results";
    let pending_left = loop {
        let (_, results) = service.call(&keys.viewer, "GET", results_path, "").await;
        let pending: i64 = results["pendingBatches"].as_str().unwrap_or("0").parse().unwrap_or(0);
        if pending == 0 || fold_began.elapsed() > FOLD_WAIT {
            break pending;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let fold_lag = fold_began.elapsed().as_secs_f64();
    println!("aggregates: {pending_left} batches still pending {fold_lag:.1} s after the last acknowledgement");

    let mut client_results = client.clone();
    let mut latencies = Vec::with_capacity(RESULT_CALLS);
    for call in 0..WARM_UP_CALLS + RESULT_CALLS {
        let request = authed(
            &keys.viewer,
            pb::GetResultsRequest {
                name: "projects/shop/experiments/checkout".into(),
                phase: 0,
                dimension: String::new(),
            },
        );
        let started = Instant::now();
        client_results.get_results(request).await.unwrap();
        if call >= WARM_UP_CALLS {
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "GetResults with {} units × 2 arms × 2 metrics: p50 {p50:.2} ms, p99 {p99:.2} ms",
        scale.units
    );

    // Rebuild: revenue gets a cap, and every unit's sums are recounted from raw events.
    let capped = json!({"metric": {"type": "METRIC_TYPE_MEAN", "event": "revenue", "cuped": {"enabled": true},
        "capping": {"type": "CAPPING_TYPE_ABSOLUTE", "value": 20.0}}});
    let rebuild_began = Instant::now();
    let (status, _) = service
        .call(
            &keys.editor,
            "PUT",
            "/v1/projects/shop/metrics/revenue",
            &capped.to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let rebuild_done = loop {
        let (_, results) = service.call(&keys.viewer, "GET", results_path, "").await;
        if results["rebuild"].is_null() && results["pendingBatches"] == "0" {
            break true;
        }
        if rebuild_began.elapsed() > Duration::from_secs(300) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rebuild_seconds = rebuild_began.elapsed().as_secs_f64();
    println!(
        "rebuild of {} units after revenue changed (with the fold backlog): {rebuild_seconds:.1} s (finished: {rebuild_done})",
        scale.units
    );

    // Assign: ASSIGNERS concurrent gRPC callers for ASSIGN_SECONDS.
    const ASSIGNERS: usize = 4;
    const ASSIGN_SECONDS: u64 = 5;
    let assign_began = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..ASSIGNERS {
        let mut client = client.clone();
        let key = keys.sdk_server.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = caller;
            while assign_began.elapsed() < Duration::from_secs(ASSIGN_SECONDS) {
                let mut context = pbjson_types::Struct::default();
                context.fields.insert(
                    "targetingKey".into(),
                    pbjson_types::Value {
                        kind: Some(pbjson_types::value::Kind::StringValue(format!("u{n}"))),
                    },
                );
                let request = authed(
                    &key,
                    pb::AssignRequest {
                        name: "projects/shop/experiments/checkout".into(),
                        context: Some(context),
                    },
                );
                let started = Instant::now();
                client.assign(request).await.unwrap();
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                n += ASSIGNERS;
            }
            latencies
        }));
    }
    let mut assign_latencies = Vec::new();
    for task in tasks {
        assign_latencies.extend(task.await.unwrap());
    }
    let assign_elapsed = assign_began.elapsed().as_secs_f64();
    assign_latencies.sort_by(f64::total_cmp);
    let assigns_per_second = assign_latencies.len() as f64 / assign_elapsed;
    let (assign_p50, assign_p99) = (percentile(&assign_latencies, 0.5), percentile(&assign_latencies, 0.99));
    println!(
        "Assign: {assigns_per_second:.0} calls/s with {ASSIGNERS} callers, p50 {assign_p50:.2} ms, p99 {assign_p99:.2} ms"
    );

    let document = json!({
        "what": "experiment-service on PostgreSQL (fresh database), release build, generator in the same process over gRPC",
        "machine": testing::machine(),
        "quick": quick,
        "ingestion": {
            "batch_events": BATCH,
            "generators": GENERATORS,
            "seconds": (elapsed * 10.0).round() / 10.0,
            "events_acknowledged": stored,
            "events_per_second": rate.round(),
            "batch_p50_ms": (percentile(&batch_latencies, 0.5) * 10.0).round() / 10.0,
            "batch_p99_ms": (percentile(&batch_latencies, 0.99) * 10.0).round() / 10.0,
            "aggregation_waited_seconds": (fold_lag * 10.0).round() / 10.0,
            "batches_still_pending_then": pending_left,
            "target_events_per_second": 100_000,
        },
        "get_results": {
            "units": scale.units,
            "arms": 2,
            "metrics": 2,
            "warm_up_calls": WARM_UP_CALLS,
            "calls": RESULT_CALLS,
            "p50_ms": (p50 * 1000.0).round() / 1000.0,
            "p99_ms": (p99 * 1000.0).round() / 1000.0,
            "target_p99_ms": 50,
        },
        "rebuild": {
            "units": scale.units,
            "metrics_recounted": 1,
            "includes": "folding the batches still pending when the metric changed (see ingestion)",
            "seconds": (rebuild_seconds * 10.0).round() / 10.0,
            "finished": rebuild_done,
            "target_seconds": 60,
        },
        "assign": {
            "callers": ASSIGNERS,
            "seconds": (assign_elapsed * 10.0).round() / 10.0,
            "calls_per_second": assigns_per_second.round(),
            "p50_ms": (assign_p50 * 1000.0).round() / 1000.0,
            "p99_ms": (assign_p99 * 1000.0).round() / 1000.0,
        },
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/experiment-service.json");
    std::fs::write(&path, serde_json::to_string_pretty(&document).unwrap() + "\n").unwrap();
    println!("wrote {}", path.display());
    service.stop().await;
}
