//! Results from the kept aggregates agree with a recount from the raw data: units, means and
//! each comparison are what `switchyard-stats` (itself checked against gbstats 0.8.0) gives on
//! sums computed here independently from the events the test sent. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{
    Backend, Service,
    recount::{RESULTS, Unit, assert_comparison, close, expected, post, send, settled_results, setup, units},
    service,
};
use switchyard_stats::srm_p_value;

async fn results_agree_with_a_recount_from_the_raw_data(backend: Backend) {
    for sequential in [false, true] {
        let service = service(backend).await;
        setup(&service, sequential).await;
        let units = units();
        send(&service, &units).await;
        let results = settled_results(&service).await;
        for (index, name) in ["purchase", "revenue", "items-per-session"].iter().enumerate() {
            let metric = &results["metrics"][index];
            assert_eq!(metric["metric"], *name);
            let comparison = &metric["arms"][1]["comparison"];
            assert_comparison(comparison, expected(&units, index, sequential), name);
        }
        assert_eq!(results["metrics"][1]["cuped"], true);
        // Revenue winsorized at the 90th percentile of all units' values.
        let mut pooled: Vec<f64> = units.iter().map(|u| u.2).collect();
        pooled.sort_by(f64::total_cmp);
        let cap = pooled[(0.9 * (pooled.len() - 1) as f64).floor() as usize];
        let winsorized = &results["metrics"][3];
        assert_eq!(winsorized["metric"], "revenue-p90");
        for (arm, result) in winsorized["arms"].as_array().unwrap().iter().enumerate() {
            let values: Vec<f64> = units.iter().filter(|u| u.0 == arm).map(|u| u.2.min(cap)).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let got = result["mean"].as_f64().unwrap();
            assert!(close(got, mean), "arm {arm}: {got} vs winsorized {mean} (cap {cap})");
        }
        let health = &results["health"];
        let srm = srm_p_value(&[200.0, 200.0], &[1.0, 1.0]);
        assert!(close(health["srmPValue"].as_f64().unwrap(), srm));
        assert_eq!(health["srmDetected"], false);
        assert_eq!(health["tooFewUnits"], false);
        service.stop().await;
    }
}

/// Replaces metric `key`, then waits for the results once its rebuild has finished (the
/// progress never counts more units than there are).
async fn redefine(service: &Service, key: &str, metric: Value) -> Value {
    let path = format!("/v1/projects/shop/metrics/{key}");
    let (status, answer) = service
        .call(&service.keys.editor, "PUT", &path, &metric.to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    loop {
        let results = settled_results(service).await;
        if results["rebuild"].is_null() {
            return results;
        }
        let progress = &results["rebuild"];
        assert!(
            progress["unitsDone"].as_str().unwrap_or("0").parse::<i64>().unwrap() <= 400,
            "{progress}"
        );
    }
}

async fn changing_a_metric_rebuilds_its_sums_from_the_raw_events(backend: Backend) {
    let service = service(backend).await;
    setup(&service, false).await;
    let units = units();
    send(&service, &units).await;
    settled_results(&service).await;
    // Revenue capped at 20 per unit from now on: the kept sums are recounted.
    let capped = json!({"metric": {"type": "METRIC_TYPE_MEAN", "event": "revenue", "cuped": {"enabled": true},
        "capping": {"type": "CAPPING_TYPE_ABSOLUTE", "value": 20.0}}});
    let results = redefine(&service, "revenue", capped).await;
    let revenue = &results["metrics"][1];
    assert_eq!(revenue["metric"], "revenue");
    for (arm, result) in revenue["arms"].as_array().unwrap().iter().enumerate() {
        let values: Vec<f64> = units.iter().filter(|u| u.0 == arm).map(|u| u.2.min(20.0)).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let got = result["mean"].as_f64().unwrap();
        assert!(close(got, mean), "arm {arm}: mean {got} vs capped {mean}");
    }
    // Only revenue was recounted; the other metrics are as they were.
    let (effect, ..) = expected(&units, 0, false);
    let purchase = results["metrics"][0]["arms"][1]["comparison"]["effect"]
        .as_f64()
        .unwrap();
    assert!(close(purchase, effect), "purchase effect {purchase} vs {effect}");

    // A ratio's part changes (sessions capped at 2 per unit): the ratio is recounted too.
    let capped = json!({"metric": {"type": "METRIC_TYPE_MEAN", "event": "session",
        "capping": {"type": "CAPPING_TYPE_ABSOLUTE", "value": 2.0}}});
    let results = redefine(&service, "sessions", capped).await;
    let capped_sessions: Vec<Unit> = units.iter().map(|u| (u.0, u.1, u.2, u.3, u.4, u.5.min(2.0))).collect();
    let ratio = &results["metrics"][2];
    assert_eq!(ratio["metric"], "items-per-session");
    assert_comparison(
        &ratio["arms"][1]["comparison"],
        expected(&capped_sessions, 2, false),
        "ratio",
    );
    service.stop().await;
}

async fn skewed_traffic_is_flagged_as_a_sample_ratio_mismatch(backend: Backend) {
    let service = service(backend).await;
    setup(&service, false).await;
    // 300 units to control, 200 to treatment under 50/50 weights.
    let exposures: Vec<Value> = (0..500)
        .map(|i| json!({"id": format!("x{i}"), "experiment": "checkout", "unit": format!("u{i}"), "variant": if i < 300 { "control" } else { "treatment" }}))
        .collect();
    post(
        &service,
        &service.keys.editor,
        "/v1/projects/shop/exposures:log",
        json!({"exposures": exposures}),
    )
    .await;
    let results = settled_results(&service).await;
    let health = &results["health"];
    assert_eq!(health["srmDetected"], true, "{health}");
    assert!(health["srmPValue"].as_f64().unwrap() < 0.001);
    let (status, _) = service.call(&service.keys.other_tenant, "GET", RESULTS, "").await;
    assert_eq!(status, 404);
    let (status, _) = service
        .call(&service.keys.viewer, "GET", &format!("{RESULTS}?phase=7"), "")
        .await;
    assert_eq!(status, 400);
    service.stop().await;
}

async fn watching_results_sees_them_change_as_events_arrive(backend: Backend) {
    use switchyard_api::experiments::v1::{GetResultsRequest, experiment_service_client::ExperimentServiceClient};

    let service = service(backend).await;
    setup(&service, false).await;
    let mut request = tonic::Request::new(GetResultsRequest {
        name: "projects/shop/experiments/checkout".into(),
        phase: 0,
        dimension: String::new(),
    });
    let bearer = format!("Bearer {}", service.keys.viewer).parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    let mut client = ExperimentServiceClient::new(service.grpc());
    let mut stream = client.watch_results(request).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(first.arms.iter().all(|arm| arm.units == 0), "{first:?}");

    let units = units();
    send(&service, &units).await;
    // Each message is a change; they end at every unit counted and nothing pending.
    loop {
        let results = stream.message().await.unwrap().expect("the stream stays open");
        let counted: i64 = results.arms.iter().map(|arm| arm.units).sum();
        if counted == units.len() as i64 && results.pending_batches == 0 {
            break;
        }
    }
    // Someone else's experiment, or a viewer of another tenant, is refused at once.
    let mut request = tonic::Request::new(GetResultsRequest {
        name: "projects/shop/experiments/checkout".into(),
        phase: 0,
        dimension: String::new(),
    });
    let bearer = format!("Bearer {}", service.keys.other_tenant).parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    let refused = client.watch_results(request).await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::NotFound);
    service.stop().await;
}

on_both_backends!(
    changing_a_metric_rebuilds_its_sums_from_the_raw_events,
    watching_results_sees_them_change_as_events_arrive,
    results_agree_with_a_recount_from_the_raw_data,
    skewed_traffic_is_flagged_as_a_sample_ratio_mismatch,
);
