//! An acknowledged batch survives kill -9: experiment-service runs as its own process, takes
//! exposures and events, is killed right after the last acknowledgement (whatever the
//! aggregator had folded by then), restarts, and its results match a recount of what was sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Backend, prepared};
use switchyard_platform::testing::{self, ServiceProcess};

async fn call(base: &str, key: &str, method: &str, path: &str, body: Value) -> Value {
    let body = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
    let response = testing::http_as(method, &format!("{base}{path}"), Some(key), &[], body).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    response.json()
}

async fn a_crash_after_acknowledgement_loses_nothing(backend: Backend) {
    let (settings, keys, flags, dir) = prepared(backend).await;
    let binary = env!("CARGO_BIN_EXE_experiment-service");
    let mut process = ServiceProcess::spawn(binary, &settings, dir.path());
    let base = process.http_url.clone();

    let url = format!("http://{}/v1/projects/shop/flags", flags.running.http_addr);
    let flag = json!({"flagId": "checkout", "flag": {"variants": {"a": "a", "b": "b"},
        "environments": {"prod": {"enabled": true, "defaultVariant": "a"}}}});
    assert_eq!(
        testing::http_as("POST", &url, Some(&keys.editor), &[], flag.to_string())
            .await
            .status,
        200
    );
    call(
        &base,
        &keys.editor,
        "POST",
        "/v1/projects/shop/metrics",
        json!({"metricId": "purchase", "metric": {"type": "METRIC_TYPE_BINOMIAL", "event": "purchase"}}),
    )
    .await;
    call(&base, &keys.editor, "POST", "/v1/projects/shop/experiments", json!({"experimentId": "checkout", "experiment": {
        "flag": "checkout", "environments": ["prod"], "arms": [{"variant": "a", "weight": 1}, {"variant": "b", "weight": 1}],
        "primaryMetrics": ["purchase"]}})).await;
    call(
        &base,
        &keys.publisher,
        "POST",
        "/v1/projects/shop/experiments/checkout:start",
        json!({}),
    )
    .await;

    // 600 units, a third of a's and half of b's buy; several batches, then kill -9.
    let arm = |i: usize| if i.is_multiple_of(2) { "a" } else { "b" };
    let buys = |i: usize| {
        if i.is_multiple_of(2) {
            i.is_multiple_of(3)
        } else {
            i % 4 < 2
        }
    };
    for chunk in (0..600).collect::<Vec<usize>>().chunks(150) {
        let exposures: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"id": format!("x{i}"), "experiment": "checkout",
            "unit": format!("u{i}"), "variant": arm(*i)})
            })
            .collect();
        call(
            &base,
            &keys.editor,
            "POST",
            "/v1/projects/shop/exposures:log",
            json!({"exposures": exposures}),
        )
        .await;
        let events: Vec<Value> = chunk
            .iter()
            .filter(|i| buys(**i))
            .map(|i| {
                json!({"id": format!("p{i}"),
            "name": "purchase", "unit": format!("u{i}")})
            })
            .collect();
        call(
            &base,
            &keys.editor,
            "POST",
            "/v1/projects/shop/events:log",
            json!({"events": events}),
        )
        .await;
    }
    process.kill();

    let restarted = ServiceProcess::spawn(binary, &settings, dir.path());
    let results = loop {
        let results = call(
            &restarted.http_url,
            &keys.viewer,
            "GET",
            "/v1/projects/shop/experiments/checkout/results",
            json!({}),
        )
        .await;
        if results["pendingBatches"] == "0" {
            break results;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let arms = results["metrics"][0]["arms"].as_array().unwrap();
    for (index, name) in ["a", "b"].iter().enumerate() {
        let units = (0..600).filter(|i| arm(*i) == *name).count() as f64;
        let bought = (0..600).filter(|i| arm(*i) == *name && buys(*i)).count() as f64;
        assert_eq!(arms[index]["variant"], *name);
        assert_eq!(arms[index]["units"], units.to_string(), "{results}");
        let mean = arms[index]["mean"].as_f64().unwrap();
        assert!(
            (mean - bought / units).abs() < 1e-12,
            "{name}: {mean} vs {}",
            bought / units
        );
    }
    let mut restarted = restarted;
    restarted.kill();
    flags.shutdown.trigger();
    flags.running.wait().await;
}

on_both_backends!(a_crash_after_acknowledgement_loses_nothing);
