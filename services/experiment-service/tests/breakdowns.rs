//! Results broken down by a dimension agree with a recount of each slice from the raw data: per
//! country the units, the purchase comparison and the percentile-capped revenue (capped at the
//! cap of all units); a dimension added while the experiment runs is recounted, and of its 25
//! values the 20 with the most units are shown and the rest summed. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{
    Backend,
    recount::{COUNTRIES, RESULTS, Unit, assert_comparison, close, expected, send, settled_results, setup, units},
    service,
};

/// The slice `value` (or the units without the attribute, for `None`) of a breakdown.
fn slice<'a>(results: &'a Value, kind: &str, value: &str) -> &'a Value {
    results["breakdown"]["slices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|slice| slice["kind"] == kind && slice["value"].as_str().unwrap_or("") == value)
        .unwrap_or_else(|| panic!("no slice {kind} {value} in {}", results["breakdown"]))
}

async fn results_broken_down_by_a_dimension_agree_with_a_recount(backend: Backend) {
    let service = service(backend).await;
    setup(&service, false).await;
    let units = units();
    send(&service, &units).await;
    settled_results(&service).await;
    let by_country = format!("{RESULTS}?dimension=country");
    let (status, results) = service.call(&service.keys.viewer, "GET", &by_country, "").await;
    assert_eq!(status, 200, "{results}");
    assert_eq!(results["breakdown"]["dimension"], "country");
    // Revenue-p90's cap is the one of all units, whichever slice a unit is in.
    let mut pooled: Vec<f64> = units.iter().map(|u| u.2).collect();
    pooled.sort_by(f64::total_cmp);
    let cap = pooled[(0.9 * (pooled.len() - 1) as f64).floor() as usize];
    for (c, country) in COUNTRIES.iter().enumerate() {
        let mine: Vec<Unit> = (0..units.len())
            .filter(|i| i % 5 == c && i % 7 != 6)
            .map(|i| units[i])
            .collect();
        let got = slice(&results, "SLICE_KIND_VALUE", country);
        for arm in 0..2 {
            let count = mine.iter().filter(|u| u.0 == arm).count();
            assert_eq!(got["arms"][arm]["units"], count.to_string(), "{country}: {got}");
        }
        let comparison = &got["metrics"][0]["arms"][1]["comparison"];
        assert_comparison(comparison, expected(&mine, 0, false), &format!("{country} purchase"));
        let winsorized = &got["metrics"][3];
        assert_eq!(winsorized["metric"], "revenue-p90");
        for arm in 0..2 {
            let values: Vec<f64> = mine.iter().filter(|u| u.0 == arm).map(|u| u.2.min(cap)).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let ours = winsorized["arms"][arm]["mean"].as_f64().unwrap();
            assert!(close(ours, mean), "{country} arm {arm}: {ours} vs winsorized {mean}");
        }
    }
    let missing = slice(&results, "SLICE_KIND_MISSING", "");
    let counted: i64 = (0..2)
        .map(|arm| missing["arms"][arm]["units"].as_str().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(counted, (0..units.len()).filter(|i| i % 7 == 6).count() as i64);

    // Not a dimension of the experiment: refused, naming the field.
    let by_platform = format!("{RESULTS}?dimension=platform");
    let (status, answer) = service.call(&service.keys.viewer, "GET", &by_platform, "").await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("dimension"), "{answer}");

    // A dimension added while it runs: its breakdown is recounted from the raw data. Of 25
    // platforms (16 units each) the 20 first by units, then by name, are shown; the other 5
    // are summed.
    let (_, experiment) = service
        .call(
            &service.keys.viewer,
            "GET",
            "/v1/projects/shop/experiments/checkout",
            "",
        )
        .await;
    let mut changed = experiment.clone();
    changed["dimensions"] = json!(["country", "platform"]);
    let path = "/v1/projects/shop/experiments/checkout";
    let body = json!({"experiment": changed, "etag": experiment["etag"]});
    let (status, answer) = service.call(&service.keys.editor, "PUT", path, &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    let results = loop {
        settled_results(&service).await;
        let (status, results) = service.call(&service.keys.viewer, "GET", &by_platform, "").await;
        assert_eq!(status, 200, "{results}");
        if results["rebuild"].is_null() {
            break results;
        }
    };
    let slices = results["breakdown"]["slices"].as_array().unwrap();
    assert_eq!(slices.len(), 21, "{}", results["breakdown"]);
    assert_eq!(slices[0]["value"], "p0");
    assert_eq!(slices[2]["value"], "p10");
    let other = &slices[20];
    assert_eq!(other["kind"], "SLICE_KIND_OTHER");
    let units_of = |slice: &Value| -> i64 {
        (0..2)
            .map(|arm| slice["arms"][arm]["units"].as_str().unwrap().parse::<i64>().unwrap())
            .sum()
    };
    assert_eq!(units_of(other), 5 * 16);
    assert!(slices[..20].iter().all(|slice| units_of(slice) == 16));
    service.stop().await;
}

on_both_backends!(results_broken_down_by_a_dimension_agree_with_a_recount);
