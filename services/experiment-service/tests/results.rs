//! Results from the kept aggregates agree with a recount from the raw data: units, means and
//! each comparison are what `switchyard-stats` (itself checked against gbstats 0.8.0) gives on
//! sums computed here independently from the events the test sent. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Backend, Service, service};
use switchyard_stats::{
    ArmStatistic, Difference, FrequentistSettings, Moments, estimate_pair, sequential_t_test, srm_p_value, welch_t_test,
};

const RESULTS: &str = "/v1/projects/shop/experiments/checkout/results";
const DAY_MS: i64 = 86_400_000;

async fn post(service: &Service, key: &str, path: &str, body: Value) -> Value {
    let (status, answer) = service.call(key, "POST", path, &body.to_string()).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

async fn setup(service: &Service, sequential: bool) {
    let editor = &service.keys.editor;
    service.create_flag("checkout", &["control", "treatment"]).await;
    for (id, metric) in [
        ("purchase", json!({"type": "METRIC_TYPE_BINOMIAL", "event": "purchase"})),
        (
            "revenue",
            json!({"type": "METRIC_TYPE_MEAN", "event": "revenue", "cuped": {"enabled": true}}),
        ),
        ("items", json!({"type": "METRIC_TYPE_MEAN", "event": "item"})),
        ("sessions", json!({"type": "METRIC_TYPE_MEAN", "event": "session"})),
        (
            "items-per-session",
            json!({"type": "METRIC_TYPE_RATIO", "numerator": "items", "denominator": "sessions"}),
        ),
        (
            "revenue-p90",
            json!({"type": "METRIC_TYPE_MEAN", "event": "revenue",
                   "capping": {"type": "CAPPING_TYPE_PERCENTILE", "value": 0.9}}),
        ),
    ] {
        post(
            service,
            editor,
            "/v1/projects/shop/metrics",
            json!({"metricId": id, "metric": metric}),
        )
        .await;
    }
    let experiment = json!({"experimentId": "checkout", "experiment": {
        "flag": "checkout", "environments": ["prod"],
        "arms": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}],
        "primaryMetrics": ["purchase", "revenue"], "secondaryMetrics": ["items-per-session", "revenue-p90"],
        "dimensions": ["country"],
        "analysis": {"sequential": sequential, "multipleTesting": "MULTIPLE_TESTING_NONE"}}});
    post(service, editor, "/v1/projects/shop/experiments", experiment).await;
    post(
        service,
        &service.keys.publisher,
        "/v1/projects/shop/experiments/checkout:start",
        json!({}),
    )
    .await;
}

/// A deterministic pseudo-random stream (no clock, no global state).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Per unit: (arm, purchased, revenue after, revenue before, items, sessions).
type Unit = (usize, f64, f64, f64, f64, f64);

fn units() -> Vec<Unit> {
    let mut rng = Lcg(20261207);
    (0..400)
        .map(|i| {
            let arm = i % 2;
            let lift = if arm == 1 { 1.3 } else { 1.0 };
            let before = (rng.next() * 50.0).floor();
            let purchased = if rng.next() < 0.2 * lift { 1.0 } else { 0.0 };
            let revenue = (before * 0.8 + rng.next() * 40.0 * lift).floor();
            let sessions = 1.0 + (rng.next() * 4.0).floor();
            let items = (sessions * rng.next() * 3.0 * lift).floor();
            (arm, purchased, revenue, before, items, sessions)
        })
        .collect()
}

async fn send(service: &Service, units: &[Unit]) {
    let editor = &service.keys.editor;
    let arms = ["control", "treatment"];
    let exposures: Vec<Value> = units
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({"id": format!("x{i}"), "experiment": "checkout", "unit": format!("u{i}"),
            "variant": arms[u.0], "environment": "prod", "attributes": attributes(i)})
        })
        .collect();
    let before = chrono_free_iso(now_ms() - 2 * DAY_MS);
    // A minute ahead (within the allowed skew): events sent before the exposures still
    // happened after them.
    let after = chrono_free_iso(now_ms() + 60_000);
    let mut events = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let unit = format!("u{i}");
        if u.1 > 0.0 {
            events.push(json!({"id": format!("p{i}"), "name": "purchase", "unit": unit, "time": after}));
        }
        events.push(json!({"id": format!("r{i}"), "name": "revenue", "unit": unit, "value": u.2, "time": after}));
        events.push(json!({"id": format!("b{i}"), "name": "revenue", "unit": unit, "value": u.3, "time": before}));
        events.push(json!({"id": format!("i{i}"), "name": "item", "unit": unit, "value": u.4, "time": after}));
        events.push(json!({"id": format!("s{i}"), "name": "session", "unit": unit, "value": u.5, "time": after}));
    }
    // A second conversion, last: the unit still converted once.
    for (i, u) in units.iter().enumerate() {
        if u.1 > 0.0 {
            events.push(json!({"id": format!("q{i}"), "name": "purchase", "unit": format!("u{i}"), "time": after}));
        }
    }
    // The first batch arrives before the exposures (its units are counted from their raw
    // events when first exposed); the others after (they move the kept sums by themselves).
    for (n, chunk) in events.chunks(500).enumerate() {
        if n == 1 {
            let answer = post(
                service,
                editor,
                "/v1/projects/shop/exposures:log",
                json!({"exposures": exposures}),
            )
            .await;
            assert_eq!(answer["stored"], 400, "{answer}");
        }
        let answer = post(
            service,
            editor,
            "/v1/projects/shop/events:log",
            json!({"events": chunk}),
        )
        .await;
        assert_eq!(answer["rejected"], json!([]), "{answer}");
    }
}

/// Every seventh unit has no country; platforms are 25 values of 16 units each.
fn attributes(i: usize) -> Value {
    let platform = format!("p{}", i % 25);
    if i % 7 == 6 {
        return json!({"platform": platform});
    }
    json!({"country": COUNTRIES[i % 5], "platform": platform})
}

const COUNTRIES: [&str; 5] = ["BD", "IN", "US", "GB", "DE"];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// RFC 3339 for a Unix time in ms, UTC.
fn chrono_free_iso(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let rest = ms.rem_euclid(DAY_MS);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60
    )
}

/// Waits until the aggregator has folded every acknowledged batch into the results.
async fn settled_results(service: &Service) -> Value {
    loop {
        let (status, results) = service.call(&service.keys.viewer, "GET", RESULTS, "").await;
        assert_eq!(status, 200, "{results}");
        if results["pendingBatches"] == "0" {
            return results;
        }
        // Not a timing assertion: only spacing the polls while the aggregator works.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1e-12)
}

fn sums(
    units: &[Unit],
    arm: usize,
    x: impl Fn(&Unit) -> f64,
    y: impl Fn(&Unit) -> f64,
) -> (f64, f64, f64, f64, f64, f64) {
    let mine: Vec<&Unit> = units.iter().filter(|u| u.0 == arm).collect();
    let n = mine.len() as f64;
    let sx: f64 = mine.iter().map(|u| x(u)).sum();
    let sx2: f64 = mine.iter().map(|u| x(u) * x(u)).sum();
    let sy: f64 = mine.iter().map(|u| y(u)).sum();
    let sy2: f64 = mine.iter().map(|u| y(u) * y(u)).sum();
    let sxy: f64 = mine.iter().map(|u| x(u) * y(u)).sum();
    (n, sx, sx2, sy, sy2, sxy)
}

fn expected(units: &[Unit], metric: usize, sequential: bool) -> (f64, f64, f64, f64) {
    let statistic = |arm: usize| match metric {
        0 => {
            let (n, sx, ..) = sums(units, arm, |u| u.1, |_| 0.0);
            ArmStatistic::Simple(Moments::binomial(n, sx))
        }
        1 => {
            let (n, sx, sx2, sy, sy2, sxy) = sums(units, arm, |u| u.2, |u| u.3);
            ArmStatistic::Cuped {
                post: Moments::mean_of(n, sx, sx2),
                pre: Moments::mean_of(n, sy, sy2),
                sum_of_products: sxy,
            }
        }
        _ => {
            let (n, sx, sx2, sy, sy2, sxy) = sums(units, arm, |u| u.4, |u| u.5);
            ArmStatistic::Ratio {
                numerator: Moments::mean_of(n, sx, sx2),
                denominator: Moments::mean_of(n, sy, sy2),
                sum_of_products: sxy,
            }
        }
    };
    let (a, b) = estimate_pair(&statistic(0), &statistic(1));
    let settings = FrequentistSettings {
        alpha: 0.05,
        difference: Difference::Relative,
        null_effect: 0.0,
    };
    let result = if sequential {
        sequential_t_test(&a, &b, &settings, 5000.0)
    } else {
        welch_t_test(&a, &b, &settings)
    }
    .unwrap();
    (result.effect, result.interval.0, result.interval.1, result.p_value)
}

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
            let (effect, lower, upper, p) = expected(&units, index, sequential);
            let got = |field: &str| comparison[field].as_f64().unwrap_or(0.0);
            assert!(
                close(got("effect"), effect),
                "{name} effect {} vs {effect}",
                got("effect")
            );
            assert!(
                close(got("ciLower"), lower),
                "{name} lower {} vs {lower}",
                got("ciLower")
            );
            assert!(
                close(got("ciUpper"), upper),
                "{name} upper {} vs {upper}",
                got("ciUpper")
            );
            assert!(close(got("pValue"), p), "{name} p {} vs {p}", got("pValue"));
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

async fn changing_a_metric_rebuilds_its_sums_from_the_raw_events(backend: Backend) {
    let service = service(backend).await;
    setup(&service, false).await;
    let units = units();
    send(&service, &units).await;
    settled_results(&service).await;
    // Revenue capped at 20 per unit from now on: the kept sums are recounted.
    let capped = json!({"metric": {"type": "METRIC_TYPE_MEAN", "event": "revenue", "cuped": {"enabled": true},
        "capping": {"type": "CAPPING_TYPE_ABSOLUTE", "value": 20.0}}});
    let (status, answer) = service
        .call(
            &service.keys.editor,
            "PUT",
            "/v1/projects/shop/metrics/revenue",
            &capped.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let results = loop {
        let results = settled_results(&service).await;
        if results["rebuild"].is_null() {
            break results;
        }
        let progress = &results["rebuild"];
        assert!(
            progress["unitsDone"].as_str().unwrap_or("0").parse::<i64>().unwrap() <= 400,
            "{progress}"
        );
    };
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
    let (status, answer) = service
        .call(
            &service.keys.editor,
            "PUT",
            "/v1/projects/shop/metrics/sessions",
            &capped.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let results = loop {
        let results = settled_results(&service).await;
        if results["rebuild"].is_null() {
            break results;
        }
    };
    let capped_sessions: Vec<Unit> = units.iter().map(|u| (u.0, u.1, u.2, u.3, u.4, u.5.min(2.0))).collect();
    let (effect, lower, upper, p) = expected(&capped_sessions, 2, false);
    let ratio = &results["metrics"][2];
    assert_eq!(ratio["metric"], "items-per-session");
    let comparison = &ratio["arms"][1]["comparison"];
    for (field, want) in [
        ("effect", effect),
        ("ciLower", lower),
        ("ciUpper", upper),
        ("pValue", p),
    ] {
        let ours = comparison[field].as_f64().unwrap_or(0.0);
        assert!(close(ours, want), "ratio {field}: {ours} vs {want}");
    }
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
        let (effect, lower, upper, p) = expected(&mine, 0, false);
        let comparison = &got["metrics"][0]["arms"][1]["comparison"];
        for (field, want) in [
            ("effect", effect),
            ("ciLower", lower),
            ("ciUpper", upper),
            ("pValue", p),
        ] {
            let ours = comparison[field].as_f64().unwrap_or(0.0);
            assert!(close(ours, want), "{country} purchase {field}: {ours} vs {want}");
        }
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
    let (status, answer) = service
        .call(
            &service.keys.viewer,
            "GET",
            &format!("{RESULTS}?dimension=platform"),
            "",
        )
        .await;
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
        let (status, results) = service
            .call(
                &service.keys.viewer,
                "GET",
                &format!("{RESULTS}?dimension=platform"),
                "",
            )
            .await;
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

on_both_backends!(
    results_broken_down_by_a_dimension_agree_with_a_recount,
    changing_a_metric_rebuilds_its_sums_from_the_raw_events,
    watching_results_sees_them_change_as_events_arrive,
    results_agree_with_a_recount_from_the_raw_data,
    skewed_traffic_is_flagged_as_a_sample_ratio_mismatch,
);
