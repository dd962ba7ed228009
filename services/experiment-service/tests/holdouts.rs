//! A holdout's own long-running comparison, from outside: every unit evaluated on a flag bound
//! to an experiment in the holdout's scope enters it, held out or not, and its results compare
//! the held-out units with the rest on the holdout's metrics — the units per arm are those
//! `Assign` keeps out of (or lets into) the experiment, the conversion rates those sent.
//! SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Backend, Service, service};
use switchyard_platform::testing;

const UNITS: usize = 400;
const RESULTS: &str = "/v1/projects/shop/holdouts/global/results";

async fn post(service: &Service, key: &str, path: &str, body: Value) -> (u16, Value) {
    service.call(key, "POST", path, &body.to_string()).await
}

async fn ok(service: &Service, key: &str, path: &str, body: Value) -> Value {
    let (status, answer) = post(service, key, path, body).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// The variant flag-service serves `unit` over OFREP, and the experiment bound to the flag.
async fn evaluate(service: &Service, unit: &str) -> (String, Value) {
    let url = format!(
        "http://{}/ofrep/v1/evaluate/flags/checkout",
        service.flags.running.http_addr
    );
    let headers = [
        ("flagd-selector", "projects/shop/environments/prod"),
        ("content-type", "application/json"),
    ];
    let body = json!({"context": {"targetingKey": unit}}).to_string();
    let response = testing::http_as("POST", &url, Some(&service.keys.sdk_server), &headers, body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = response.json();
    (
        answer["variant"].as_str().unwrap_or_default().to_owned(),
        answer["metadata"]["experiment"].clone(),
    )
}

fn units_of(arm: &Value) -> usize {
    arm["units"].as_str().unwrap_or("0").parse().unwrap()
}

async fn a_holdout_compares_its_units_with_the_rest(backend: Backend) {
    let service = service(backend).await;
    let editor = &service.keys.editor;
    ok(
        &service,
        editor,
        "/v1/projects/shop/metrics",
        json!({"metricId": "purchase", "metric": {"type": "METRIC_TYPE_BINOMIAL", "event": "purchase"}}),
    )
    .await;
    // A metric the project lacks is refused, naming it.
    let (status, answer) = post(
        &service,
        editor,
        "/v1/projects/shop/holdouts",
        json!({"holdoutId": "global", "holdout": {"share": 0.2, "metrics": ["purchase", "refund"]}}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("holdout.metrics[1]"), "{answer}");
    let holdout = json!({"holdoutId": "global", "holdout": {"share": 0.2, "metrics": ["purchase"]}});
    let created = ok(&service, editor, "/v1/projects/shop/holdouts", holdout).await;
    assert_eq!(created["metrics"], json!(["purchase"]), "{created}");

    service.create_flag("checkout", &["control", "treatment"]).await;
    let experiment = json!({"experimentId": "checkout", "experiment": {
        "flag": "checkout", "environments": ["prod"],
        "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}]}});
    ok(&service, editor, "/v1/projects/shop/experiments", experiment).await;
    let started = ok(
        &service,
        &service.keys.publisher,
        "/v1/projects/shop/experiments/checkout:start",
        json!({}),
    )
    .await;
    assert_eq!(started["holdouts"], json!(["projects/shop/holdouts/global"]));
    while evaluate(&service, "u0").await.1 != "checkout" {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // Every unit evaluated once; Assign says which the holdout keeps out (coverage is full, so
    // every other unit is in the experiment). Every third unit buys.
    let mut held = 0;
    let (mut held_buyers, mut other_buyers) = (0, 0);
    let mut events = Vec::new();
    for i in 0..UNITS {
        let unit = format!("u{i}");
        evaluate(&service, &unit).await;
        let assigned = ok(
            &service,
            &service.keys.sdk_server,
            "/v1/projects/shop/experiments/checkout:assign",
            json!({"context": {"targetingKey": unit}}),
        )
        .await;
        let is_held = assigned["inExperiment"] != true;
        held += usize::from(is_held);
        if i % 3 == 0 {
            if is_held {
                held_buyers += 1;
            } else {
                other_buyers += 1;
            }
            events.push(json!({"id": format!("buy-{i}"), "name": "purchase", "unit": unit}));
        }
    }
    assert!((50..110).contains(&held), "{held} of {UNITS} held out at 20%");
    ok(
        &service,
        editor,
        "/v1/projects/shop/events:log",
        json!({"events": events}),
    )
    .await;

    // A guard against hanging if exposures never arrive, not a timing assertion.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let results = loop {
        let (status, results) = service.call(&service.keys.viewer, "GET", RESULTS, "").await;
        assert_eq!(status, 200, "{results}");
        let arms = results["arms"].as_array().unwrap();
        if arms.iter().map(units_of).sum::<usize>() == UNITS && results["pendingBatches"] == "0" {
            break results;
        }
        assert!(std::time::Instant::now() < deadline, "{results}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(results["experiment"], "projects/shop/holdouts/global");
    assert_eq!(results["arms"][0]["variant"], "holdout");
    assert_eq!(units_of(&results["arms"][0]), held);
    assert_eq!(results["arms"][1]["variant"], "general");
    assert_eq!(units_of(&results["arms"][1]), UNITS - held);
    let purchase = &results["metrics"][0];
    assert_eq!(purchase["metric"], "purchase");
    let rate = |buyers: usize, units: usize| buyers as f64 / units as f64;
    let mean = |arm: usize| purchase["arms"][arm]["mean"].as_f64().unwrap();
    assert!((mean(0) - rate(held_buyers, held)).abs() < 1e-12, "{purchase}");
    assert!((mean(1) - rate(other_buyers, UNITS - held)).abs() < 1e-12, "{purchase}");
    assert!(
        purchase["arms"][1]["comparison"]["pValue"].as_f64().is_some(),
        "{purchase}"
    );
    // A 20% holdout with 20% of the units: no sample ratio mismatch.
    assert_eq!(results["health"]["srmDetected"], false, "{results}");

    // The metric now counts another event: the comparison is recounted from raw events.
    let redefined = json!({"metric": {"type": "METRIC_TYPE_BINOMIAL", "event": "refund"}}).to_string();
    let (status, answer) = service
        .call(editor, "PUT", "/v1/projects/shop/metrics/purchase", &redefined)
        .await;
    assert_eq!(status, 200, "{answer}");
    let results = loop {
        let (_, results) = service.call(&service.keys.viewer, "GET", RESULTS, "").await;
        if results["rebuild"].is_null() && results["pendingBatches"] == "0" {
            break results;
        }
        assert!(std::time::Instant::now() < deadline, "{results}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let purchase = &results["metrics"][0];
    assert_eq!(purchase["arms"][0]["mean"], 0.0, "nobody refunded: {purchase}");
    assert_eq!(purchase["arms"][1]["mean"], 0.0, "nobody refunded: {purchase}");

    let (status, _) = service.call(&service.keys.other_tenant, "GET", RESULTS, "").await;
    assert_eq!(status, 404);
    let (status, _) = service
        .call(
            &service.keys.viewer,
            "GET",
            "/v1/projects/shop/holdouts/nope/results",
            "",
        )
        .await;
    assert_eq!(status, 404);
    service.stop().await;
}

on_both_backends!(a_holdout_compares_its_units_with_the_rest);
