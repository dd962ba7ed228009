//! Layers and holdouts from outside: two experiments holding the two halves of a layer never
//! share a unit and a holdout's units are in neither — checked over 100,000 units on the rules
//! flag-service serves (evaluated by flag-engine, as every flagd provider evaluates them) and
//! against `Assign`; an overlapping range is refused at start. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use flag_engine::{Context, FlagSet, Limits, Scope};
use serde_json::{Value, json};
use support::{Backend, Service, service};

const UNITS: usize = 100_000;

async fn post(service: &Service, key: &str, path: &str, body: Value) -> (u16, Value) {
    service.call(key, "POST", path, &body.to_string()).await
}

/// Experiment `key` on its own flag, holding `[start, end)` of layer `checkout`.
async fn experiment(service: &Service, key: &str, start: f64, end: f64) {
    service.create_flag(key, &["control", "treatment"]).await;
    let body = json!({"experimentId": key, "experiment": {
        "flag": key, "environments": ["prod"],
        "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}],
        "layers": [{"layer": "checkout", "start": start, "end": end}]}});
    let (status, answer) = post(service, &service.keys.editor, "/v1/projects/shop/experiments", body).await;
    assert_eq!(status, 200, "{answer}");
}

async fn start(service: &Service, key: &str) -> (u16, Value) {
    post(
        service,
        &service.keys.publisher,
        &format!("/v1/projects/shop/experiments/{key}:start"),
        json!({}),
    )
    .await
}

/// The flag's rule as flag-service serves it, compiled with an `out` default: a unit the rule
/// does not place in an arm gets `out`.
async fn served_rule(service: &Service, flag: &str) -> FlagSet {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let read = service.flag(flag).await;
        let targeting = read["environments"]["prod"]["targeting"].clone();
        if !targeting.is_null() {
            let document = json!({"flags": {flag: {"state": "ENABLED", "defaultVariant": "out",
                "variants": {"control": "control", "treatment": "treatment", "out": "out"},
                "targeting": targeting}}});
            return FlagSet::from_document(&document, &Limits::default()).unwrap();
        }
        // Written by the start; the deadline only guards against hanging.
        assert!(
            std::time::Instant::now() < deadline,
            "{flag} never got its rule: {read}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn arm(rules: &FlagSet, flag: &str, unit: &str) -> Option<String> {
    let mut context = Context::new();
    context.insert("targetingKey", Value::String(unit.to_owned()));
    let resolution = rules.evaluate(
        flag,
        &Scope {
            context: &context,
            timestamp: 0,
        },
    );
    resolution
        .variant
        .filter(|variant| *variant != "out")
        .map(str::to_owned)
}

async fn experiments_in_one_layer_never_share_a_unit_and_leave_the_holdout_alone(backend: Backend) {
    let service = service(backend).await;
    let editor = &service.keys.editor;
    let (status, layer) = post(
        &service,
        editor,
        "/v1/projects/shop/layers",
        json!({"layerId": "checkout", "layer": {"displayName": "Checkout page"}}),
    )
    .await;
    assert_eq!(status, 200, "{layer}");
    assert_eq!(layer["bucketingAttribute"], "targetingKey", "{layer}");
    let (status, holdout) = post(
        &service,
        editor,
        "/v1/projects/shop/holdouts",
        json!({"holdoutId": "global", "holdout": {"share": 0.1}}),
    )
    .await;
    assert_eq!(status, 200, "{holdout}");

    experiment(&service, "left", 0.0, 0.5).await;
    experiment(&service, "right", 0.5, 1.0).await;
    experiment(&service, "greedy", 0.4, 0.6).await;
    let (status, answer) = start(&service, "left").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["holdouts"], json!(["projects/shop/holdouts/global"]), "{answer}");
    assert_eq!(start(&service, "right").await.0, 200);
    let (status, answer) = start(&service, "greedy").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("overlaps"), "{answer}");

    let left = served_rule(&service, "left").await;
    let right = served_rule(&service, "right").await;
    let (mut in_left, mut in_right, mut in_neither) = (0, 0, 0);
    for i in 0..UNITS {
        let unit = format!("unit-{i}");
        match (arm(&left, "left", &unit), arm(&right, "right", &unit)) {
            (Some(_), Some(_)) => panic!("{unit} is in both experiments of the layer"),
            (Some(_), None) => in_left += 1,
            (None, Some(_)) => in_right += 1,
            (None, None) => in_neither += 1,
        }
    }
    // Every unit outside the 10% holdout is in exactly one of the two halves.
    let share = |n: usize| n as f64 / UNITS as f64;
    assert!((share(in_neither) - 0.10).abs() < 0.01, "held out: {in_neither}");
    assert!((share(in_left) - 0.45).abs() < 0.01, "left: {in_left}");
    assert!((share(in_right) - 0.45).abs() < 0.01, "right: {in_right}");

    // Assign agrees with the served rule, unit for unit.
    for i in 0..200 {
        let unit = format!("unit-{i}");
        let (status, assigned) = post(
            &service,
            &service.keys.sdk_server,
            "/v1/projects/shop/experiments/left:assign",
            json!({"context": {"targetingKey": unit}}),
        )
        .await;
        assert_eq!(status, 200, "{assigned}");
        let expected = arm(&left, "left", &unit);
        assert_eq!(
            assigned["inExperiment"] == true,
            expected.is_some(),
            "{unit}: {assigned}"
        );
        if let Some(variant) = expected {
            assert_eq!(assigned["variant"], variant.as_str(), "{unit}");
        }
    }

    let (_, read) = service
        .call(&service.keys.viewer, "GET", "/v1/projects/shop/layers/checkout", "")
        .await;
    let holders: Vec<&str> = read["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|range| range["experiment"].as_str().unwrap())
        .collect();
    assert_eq!(
        holders,
        ["projects/shop/experiments/left", "projects/shop/experiments/right"],
        "{read}"
    );
    let (status, _) = service
        .call(
            &service.keys.other_tenant,
            "GET",
            "/v1/projects/shop/layers/checkout",
            "",
        )
        .await;
    assert_eq!(status, 404);
    service.stop().await;
}

async fn bad_layers_and_holdouts_are_refused(backend: Backend) {
    let service = service(backend).await;
    let editor = &service.keys.editor;
    for (body, field) in [
        (json!({"holdoutId": "h", "holdout": {"share": 0.7}}), "holdout.share"),
        (
            json!({"holdoutId": "h", "holdout": {"share": 0.00015}}),
            "holdout.share",
        ),
        (json!({"holdoutId": "Bad Key", "holdout": {"share": 0.1}}), "holdout_id"),
    ] {
        let (status, answer) = post(&service, editor, "/v1/projects/shop/holdouts", body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(field), "{field}: {answer}");
    }
    let (status, _) = post(
        &service,
        &service.keys.viewer,
        "/v1/projects/shop/layers",
        json!({"layerId": "l", "layer": {}}),
    )
    .await;
    assert_eq!(status, 403, "viewers do not define layers");
    let layer = json!({"layerId": "l", "layer": {}});
    assert_eq!(
        post(&service, editor, "/v1/projects/shop/layers", layer.clone())
            .await
            .0,
        200
    );
    assert_eq!(post(&service, editor, "/v1/projects/shop/layers", layer).await.0, 409);

    service.create_flag("checkout", &["control", "treatment"]).await;
    for (layers, why) in [
        (
            json!([{"layer": "l", "start": 0.5, "end": 0.2}]),
            "experiment.layers[0]",
        ),
        (
            json!([{"layer": "l", "start": 0.0, "end": 0.00005}]),
            "experiment.layers[0]",
        ),
        (
            json!([{"layer": "l", "start": 0.0, "end": 0.1}, {"layer": "l", "start": 0.2, "end": 0.3}]),
            "one range per layer",
        ),
    ] {
        let body = json!({"experimentId": "e", "experiment": {"flag": "checkout", "environments": ["prod"],
            "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}],
            "layers": layers}});
        let (status, answer) = post(&service, editor, "/v1/projects/shop/experiments", body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(why), "{why}: {answer}");
    }
    // A layer that does not exist is found at start.
    let body = json!({"experimentId": "e", "experiment": {"flag": "checkout", "environments": ["prod"],
        "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}],
        "layers": [{"layer": "nowhere", "start": 0.0, "end": 0.5}]}});
    assert_eq!(
        post(&service, editor, "/v1/projects/shop/experiments", body).await.0,
        200
    );
    let (status, answer) = start(&service, "e").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("no layer `nowhere`"), "{answer}");
    // A second running experiment on the flag of a running one is refused.
    let first = json!({"experimentId": "first", "experiment": {"flag": "checkout", "environments": ["prod"],
        "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}]}});
    assert_eq!(
        post(&service, editor, "/v1/projects/shop/experiments", first).await.0,
        200
    );
    let second = json!({"experimentId": "second", "experiment": {"flag": "checkout", "environments": ["prod"],
        "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}]}});
    assert_eq!(
        post(&service, editor, "/v1/projects/shop/experiments", second).await.0,
        200
    );
    assert_eq!(start(&service, "first").await.0, 200);
    let (status, answer) = start(&service, "second").await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("experiment `first` runs on flag `checkout`"),
        "{answer}"
    );
    service.stop().await;
}

on_both_backends!(
    experiments_in_one_layer_never_share_a_unit_and_leave_the_holdout_alone,
    bad_layers_and_holdouts_are_refused,
);
