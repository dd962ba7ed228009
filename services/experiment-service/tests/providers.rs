//! Assignment is identical wherever flags are evaluated: for 10,000 units the unmodified
//! Python flagd provider — in RPC mode (flag-service evaluates) and in in-process mode (the
//! provider evaluates the synced JSON Logic itself) — serves each unit exactly the variant
//! `Assign` gives it, through a rule with every part an experiment can have: a holdout, a layer
//! range, targeting, partial coverage and unequal weights. PostgreSQL; the provider side runs
//! in `scripts/experiment-assignment-e2e.sh` (Python 3.11+ and PyPI the first time).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::{StreamExt, stream};
use serde_json::{Value, json};
use support::{
    Backend, Service, prepared,
    recount::{create_and_start, post},
    start,
};
use switchyard_platform::testing;

const UNITS: usize = 10_000;
const COUNTRIES: [&str; 4] = ["BD", "IN", "PK", "NP"];

/// A 10% holdout, and experiment `checkout` on [0.2, 0.9) of layer `page`: units from BD and
/// IN, 80% of them, split 1:1:2.
async fn running_experiment(service: &Service) {
    let editor = &service.keys.editor;
    post(
        service,
        editor,
        "/v1/projects/shop/holdouts",
        json!({"holdoutId": "global", "holdout": {"share": 0.1}}),
    )
    .await;
    post(
        service,
        editor,
        "/v1/projects/shop/layers",
        json!({"layerId": "page", "layer": {}}),
    )
    .await;
    service
        .create_flag("checkout", &["control", "one-click", "express"])
        .await;
    let body = json!({"experimentId": "checkout", "experiment": {
        "flag": "checkout", "environments": ["prod"], "coverage": 0.8,
        "targeting": {"in": [{"var": "country"}, ["BD", "IN"]]},
        "arms": [{"variant": "control", "weight": 1}, {"variant": "one-click", "weight": 1},
                 {"variant": "express", "weight": 2}],
        "layers": [{"layer": "page", "start": 0.2, "end": 0.9}]}});
    create_and_start(service, body).await;
}

/// Waits until flag-service evaluates the flag with the experiment bound (its evaluation
/// snapshot follows the write within moments).
async fn until_flag_serves_the_experiment(service: &Service) {
    let url = format!(
        "http://{}/ofrep/v1/evaluate/flags/checkout",
        service.flags.running.http_addr
    );
    loop {
        let body = json!({"context": context(0)}).to_string();
        let headers = [("content-type", "application/json")];
        let response = testing::http_as("POST", &url, Some(&service.keys.sdk_prod), &headers, body).await;
        assert_eq!(response.status, 200, "{}", response.text());
        if response.json()["metadata"]["experiment"] == "checkout" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn context(unit: usize) -> Value {
    json!({"targetingKey": format!("u{unit}"), "country": COUNTRIES[unit % COUNTRIES.len()]})
}

/// What `Assign` says each unit is served: its arm, or the flag's default (`control`) when
/// it is not in the experiment.
async fn assigned(service: &Service) -> Vec<String> {
    let path = "/v1/projects/shop/experiments/checkout:assign";
    stream::iter(0..UNITS)
        .map(|unit| async move {
            let body = json!({"context": context(unit)}).to_string();
            let (status, answer) = service.call(&service.keys.sdk_server, "POST", path, &body).await;
            assert_eq!(status, 200, "{answer}");
            match answer["inExperiment"].as_bool() {
                Some(true) => answer["variant"].as_str().unwrap().to_owned(),
                _ => "control".to_owned(),
            }
        })
        .buffered(8)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagd_providers_in_both_modes_serve_every_unit_the_arm_assign_gives() {
    let (mut settings, keys, flags, dir) = prepared(Backend::Postgres).await;
    settings.limits.per_principal_rps = 1_000_000;
    let service = start(settings, keys, flags, dir).await;
    running_experiment(&service).await;
    until_flag_serves_the_experiment(&service).await;
    let variants = assigned(&service).await;
    // The rule really splits: every arm has units, and many units are out (holdout, other
    // countries, coverage, the rest of the layer).
    for arm in ["one-click", "express"] {
        let count = variants.iter().filter(|variant| *variant == arm).count();
        assert!(count > 500, "{arm}: {count} units");
    }
    let cases: Vec<Value> = variants
        .iter()
        .enumerate()
        .map(|(unit, variant)| json!({"context": context(unit), "variant": variant}))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    let spec = json!({"port": service.flags.running.grpc_addr.port(), "selector": service.keys.sdk_prod,
        "flag": "checkout", "cases": cases});
    std::fs::write(file.path(), spec.to_string()).unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/experiment-assignment-e2e.sh");
    tokio::task::spawn_blocking(move || {
        testing::run_suite(&script, &[("ASSIGNMENT_CASES", path.as_str())]);
    })
    .await
    .unwrap();
    service.stop().await;
}
