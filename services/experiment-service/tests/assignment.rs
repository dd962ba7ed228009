//! Assignment where flags are evaluated: starting an experiment writes plain flagd JSON Logic
//! into its flag through flag-service, so flag-service's own evaluation (OFREP here) and
//! `Assign` give every unit the same arm; raising coverage moves nobody already in; a stop
//! with a decision serves the shipped variant; a flag that lacks an arm is refused up front.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Backend, Service, service};
use switchyard_platform::testing;

const EXPERIMENT: &str = "/v1/projects/shop/experiments/green-button";

async fn start_experiment(service: &Service, coverage: f64) -> Value {
    service.create_flag("checkout-button", &["blue", "green"]).await;
    let body = json!({"experimentId": "green-button", "experiment": {
        "flag": "checkout-button", "environments": ["prod"], "coverage": coverage,
        "arms": [{"variant": "blue", "weight": 1}, {"variant": "green", "weight": 1}]}});
    let (status, created) = service
        .call(
            &service.keys.editor,
            "POST",
            "/v1/projects/shop/experiments",
            &body.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let (status, running) = service
        .call(&service.keys.publisher, "POST", &format!("{EXPERIMENT}:start"), "{}")
        .await;
    assert_eq!(status, 200, "{running}");
    running
}

/// OFREP from flag-service for one unit: (variant, flag metadata).
async fn ofrep(service: &Service, unit: &str) -> (String, Value) {
    ofrep_with(service, json!({"targetingKey": unit})).await
}

/// OFREP from flag-service for an evaluation context: (variant, flag metadata).
async fn ofrep_with(service: &Service, context: Value) -> (String, Value) {
    let url = format!(
        "http://{}/ofrep/v1/evaluate/flags/checkout-button",
        service.flags.running.http_addr
    );
    let body = json!({"context": context}).to_string();
    let headers = [
        ("flagd-selector", "projects/shop/environments/prod"),
        ("content-type", "application/json"),
    ];
    let response = testing::http_as("POST", &url, Some(&service.keys.sdk_server), &headers, body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = response.json();
    (
        answer["variant"].as_str().unwrap_or_default().to_owned(),
        answer["metadata"].clone(),
    )
}

async fn assign(service: &Service, unit: &str) -> Value {
    let body = json!({"context": {"targetingKey": unit}}).to_string();
    let (status, answer) = service
        .call(&service.keys.sdk_server, "POST", &format!("{EXPERIMENT}:assign"), &body)
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Waits until flag-service serves the flag with (or without) the experiment bound.
async fn until_flag_serves(service: &Service, bound: bool) {
    loop {
        let (_, metadata) = ofrep(service, "probe").await;
        if (metadata["experiment"] == "green-button") == bound {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn flag_evaluation_and_assign_agree_unit_for_unit(backend: Backend) {
    let service = service(backend).await;
    start_experiment(&service, 0.6).await;
    until_flag_serves(&service, true).await;
    let flag = service.flag("checkout-button").await;
    let targeting = &flag["environments"]["prod"]["targeting"];
    assert!(
        targeting.to_string().contains("fractional"),
        "plain flagd JSON Logic: {targeting}"
    );

    let mut inside = 0;
    let mut green = 0;
    for i in 0..1_000 {
        let unit = format!("user-{i}");
        let (variant, _) = ofrep(&service, &unit).await;
        let assigned = assign(&service, &unit).await;
        if assigned["inExperiment"] == true {
            inside += 1;
            green += usize::from(variant == "green");
            assert_eq!(assigned["variant"], variant.as_str(), "{unit}");
        } else {
            assert_eq!(
                variant, "blue",
                "{unit}: outside the experiment, the flag's own default"
            );
        }
    }
    assert!((540..=660).contains(&inside), "60% coverage: {inside} of 1000");
    assert!(
        (inside as f64 * 0.4..inside as f64 * 0.6).contains(&(green as f64)),
        "{green} of {inside} green"
    );
    service.stop().await;
}

async fn raising_coverage_moves_nobody_and_a_decision_ships_the_winner(backend: Backend) {
    let service = service(backend).await;
    let running = start_experiment(&service, 0.3).await;
    until_flag_serves(&service, true).await;
    let before: Vec<Value> = assignments_of(&service, 300).await;

    let mut wider = running.clone();
    wider["coverage"] = json!(0.9);
    let (status, answer) = service
        .call(
            &service.keys.editor,
            "PUT",
            EXPERIMENT,
            &json!({"experiment": wider}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let after: Vec<Value> = assignments_of(&service, 300).await;
    for (was, is) in before.iter().zip(&after) {
        if was["inExperiment"] == true {
            assert_eq!(
                was["variant"], is["variant"],
                "an assigned unit never moves when coverage grows"
            );
        }
    }
    let count = |list: &[Value]| list.iter().filter(|a| a["inExperiment"] == true).count();
    assert!(
        count(&after) > count(&before) * 2,
        "{} then {}",
        count(&before),
        count(&after)
    );

    let stop = json!({"decision": {"type": "DECISION_TYPE_SHIP", "variant": "green"}}).to_string();
    let (status, answer) = service
        .call(&service.keys.publisher, "POST", &format!("{EXPERIMENT}:stop"), &stop)
        .await;
    assert_eq!(status, 200, "{answer}");
    until_flag_serves(&service, false).await;
    for i in 0..50 {
        let (variant, _) = ofrep(&service, &format!("user-{i}")).await;
        assert_eq!(variant, "green", "shipped to everyone eligible");
    }
    service.stop().await;
}

async fn assignments_of(service: &Service, units: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(units);
    for i in 0..units {
        out.push(assign(service, &format!("user-{i}")).await);
    }
    out
}

async fn an_experiment_that_does_not_fit_its_flag_does_not_start(backend: Backend) {
    let service = service(backend).await;
    service.create_flag("checkout-button", &["blue", "red"]).await;
    let body = json!({"experimentId": "green-button", "experiment": {
        "flag": "checkout-button", "environments": ["prod"],
        "arms": [{"variant": "blue", "weight": 1}, {"variant": "green", "weight": 1}]}});
    service
        .call(
            &service.keys.editor,
            "POST",
            "/v1/projects/shop/experiments",
            &body.to_string(),
        )
        .await;
    let (status, error) = service
        .call(&service.keys.publisher, "POST", &format!("{EXPERIMENT}:start"), "{}")
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(error["message"].as_str().unwrap().contains("not a variant"), "{error}");
    let (_, experiment) = service.call(&service.keys.viewer, "GET", EXPERIMENT, "").await;
    assert_eq!(experiment["state"], "EXPERIMENT_STATE_DRAFT", "nothing changed");
    let flag = service.flag("checkout-button").await;
    assert!(
        flag["environments"]["prod"]["targeting"].is_null(),
        "the flag was not touched: {flag}"
    );
    service.stop().await;
}

async fn evaluating_the_flag_records_exposures(backend: Backend) {
    let service = service(backend).await;
    start_experiment(&service, 1.0).await;
    until_flag_serves(&service, true).await;
    let mut expected = std::collections::BTreeMap::<String, i64>::new();
    for i in 0..200 {
        let unit = format!("user-{i}");
        // A rich context (25 attributes, more than an exposure keeps) still makes an exposure.
        let mut context = serde_json::Map::new();
        context.insert("targetingKey".into(), json!(unit));
        for a in 0..25 {
            context.insert(format!("a{a:02}"), json!(a));
        }
        let (variant, _) = ofrep_with(&service, Value::Object(context)).await;
        // Twice: a unit's repeated evaluations are one exposure.
        ofrep(&service, &unit).await;
        *expected.entry(variant).or_default() += 1;
    }
    let path = format!("{EXPERIMENT}/exposureCounts");
    // A guard against hanging forever if exposures never arrive, not a timing assertion.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "exposures from flag evaluation never arrived"
        );
        let (_, counts) = service.call(&service.keys.viewer, "GET", &path, "").await;
        let got: std::collections::BTreeMap<String, i64> = counts["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|arm| {
                (
                    arm["variant"].as_str().unwrap().to_owned(),
                    arm["units"].as_str().unwrap_or("0").parse().unwrap(),
                )
            })
            .filter(|(_, units)| *units > 0)
            .collect();
        // "probe" was evaluated too while waiting for the flag.
        let without_probe: i64 = got.values().sum::<i64>();
        if without_probe >= 200 {
            assert!(without_probe <= 201, "{counts}");
            for (variant, units) in &expected {
                let seen = got.get(variant).copied().unwrap_or(0);
                assert!(seen == *units || seen == units + 1, "{variant}: {seen} vs {units}");
            }
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    service.stop().await;
}

on_both_backends!(
    evaluating_the_flag_records_exposures,
    flag_evaluation_and_assign_agree_unit_for_unit,
    raising_coverage_moves_nobody_and_a_decision_ships_the_winner,
    an_experiment_that_does_not_fit_its_flag_does_not_start,
);
