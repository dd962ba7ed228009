//! The results tests' shared ground: an experiment on `checkout` with a metric of each kind,
//! 400 units whose exposures and events the tests send, and the figures an independent recount
//! of those units gives (sums computed here, compared by `switchyard-stats`, itself checked
//! against gbstats 0.8.0).

use serde_json::{Value, json};
use switchyard_stats::{
    ArmStatistic, Difference, FrequentistSettings, Moments, estimate_pair, sequential_t_test, welch_t_test,
};

use super::Service;

pub const RESULTS: &str = "/v1/projects/shop/experiments/checkout/results";
pub const DAY_MS: i64 = 86_400_000;

pub async fn post(service: &Service, key: &str, path: &str, body: Value) -> Value {
    let (status, answer) = service.call(key, "POST", path, &body.to_string()).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// A metric of each kind on the events [`send`] emits: binomial, mean with CUPED, two means
/// and their ratio (the results tests, and the scale bench).
pub fn metric_of_each_kind() -> Vec<(&'static str, Value)> {
    vec![
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
    ]
}

/// Creates the experiment (a `CreateExperiment` body) and starts it; the start's answer.
pub async fn create_and_start(service: &Service, experiment: Value) -> Value {
    let key = experiment["experimentId"].as_str().unwrap_or_default().to_owned();
    post(
        service,
        &service.keys.editor,
        "/v1/projects/shop/experiments",
        experiment,
    )
    .await;
    let start = format!("/v1/projects/shop/experiments/{key}:start");
    post(service, &service.keys.publisher, &start, json!({})).await
}

pub async fn setup(service: &Service, sequential: bool) {
    let editor = &service.keys.editor;
    service.create_flag("checkout", &["control", "treatment"]).await;
    let p90 = json!({"type": "METRIC_TYPE_MEAN", "event": "revenue",
                     "capping": {"type": "CAPPING_TYPE_PERCENTILE", "value": 0.9}});
    for (id, metric) in metric_of_each_kind().into_iter().chain([("revenue-p90", p90)]) {
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
    create_and_start(service, experiment).await;
}

/// A deterministic pseudo-random stream (no clock, no global state).
pub struct Lcg(u64);
impl Lcg {
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Per unit: (arm, purchased, revenue after, revenue before, items, sessions).
pub type Unit = (usize, f64, f64, f64, f64, f64);

pub fn units() -> Vec<Unit> {
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

pub async fn send(service: &Service, units: &[Unit]) {
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
pub fn attributes(i: usize) -> Value {
    let platform = format!("p{}", i % 25);
    if i % 7 == 6 {
        return json!({"platform": platform});
    }
    json!({"country": COUNTRIES[i % 5], "platform": platform})
}

pub const COUNTRIES: [&str; 5] = ["BD", "IN", "US", "GB", "DE"];

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// RFC 3339 for a Unix time in ms, UTC.
pub fn chrono_free_iso(ms: i64) -> String {
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
pub async fn settled_results(service: &Service) -> Value {
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

pub fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1e-12)
}

/// Asserts a comparison's effect, confidence interval and p-value are `want`'s (as
/// [`expected`] gives them), to [`close`].
pub fn assert_comparison(comparison: &Value, want: (f64, f64, f64, f64), label: &str) {
    let (effect, lower, upper, p) = want;
    for (field, want) in [
        ("effect", effect),
        ("ciLower", lower),
        ("ciUpper", upper),
        ("pValue", p),
    ] {
        let ours = comparison[field].as_f64().unwrap_or(0.0);
        assert!(close(ours, want), "{label} {field}: {ours} vs {want}");
    }
}

pub fn sums(
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

pub fn expected(units: &[Unit], metric: usize, sequential: bool) -> (f64, f64, f64, f64) {
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
