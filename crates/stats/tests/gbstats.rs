//! crates/stats against gbstats 0.8.0: every figure of every vector within 1e-6 relative.
//!
//! `checked_in_vectors_agree` reads `vectors/gbstats-0.8.0.json`; `gbstats_itself_agrees`
//! installs gbstats 0.8.0 into a local venv (scripts/gbstats-vectors.sh), regenerates the
//! vectors and checks both that they are the checked-in ones and that we agree with them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use switchyard_stats::{
    ArmStatistic, BayesianSettings, Difference, EffectPrior, FrequentistSettings, Moments, Undefined,
    benjamini_hochberg, effect_bayesian_test, estimate_pair, sequential_t_test, srm_p_value, welch_t_test,
};

const RELATIVE: f64 = 1e-6;
/// Below this, gbstats' own figures carry absolute error: it computes p-values as
/// `1 - cdf` and risks from scipy's truncated normal, where we compute tails directly.
const ABSOLUTE: f64 = 1e-12;

fn vectors_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/gbstats-0.8.0.json")
}

#[test]
fn checked_in_vectors_agree() {
    let text = std::fs::read_to_string(vectors_path()).expect("checked-in vectors");
    let document: Value = serde_json::from_str(&text).expect("vectors are JSON");
    let checked = check_document(&document);
    assert!(checked > 400, "only {checked} figures compared");
}

#[test]
fn gbstats_itself_agrees() {
    let out = std::env::temp_dir().join(format!("gbstats-vectors-{}.json", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gbstats-vectors.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("python3 runs");
    assert!(
        status.success(),
        "scripts/gbstats-vectors.sh failed (it needs python3.11+ and PyPI)"
    );
    let fresh: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("fresh vectors")).expect("JSON");
    let _ = std::fs::remove_file(&out);
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_path()).expect("vectors")).expect("JSON");
    // The same cases and figures; numbers within 1e-9 relative, since numpy/scipy's last bits
    // differ between CPUs (a CI machine differed from the one that wrote the vectors).
    if let Some(path) = differs(&fresh["comparisons"], &checked_in["comparisons"], "comparisons") {
        panic!("the checked-in vectors are not what gbstats 0.8.0 computes at {path}: regenerate them");
    }
    check_document(&fresh);
}

/// Where two vector documents differ beyond rounding, if they do.
fn differs(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64()?, y.as_f64()?);
            let close = (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || (x - y).abs() <= 1e-15;
            (!close).then(|| format!("{path}: {x} vs {y}"))
        }
        (Value::Array(xs), Value::Array(ys)) => {
            if xs.len() != ys.len() {
                return Some(format!("{path}: {} vs {} items", xs.len(), ys.len()));
            }
            xs.iter()
                .zip(ys)
                .enumerate()
                .find_map(|(i, (x, y))| differs(x, y, &format!("{path}[{i}]")))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            if xs.len() != ys.len() || xs.keys().any(|key| !ys.contains_key(key)) {
                return Some(format!("{path}: different fields"));
            }
            xs.iter()
                .find_map(|(key, x)| differs(x, &ys[key], &format!("{path}.{key}")))
        }
        (x, y) => (x != y).then(|| format!("{path}: {x} vs {y}")),
    }
}

/// Compares every case; returns how many figures were compared.
fn check_document(document: &Value) -> usize {
    let mut compared = 0;
    let mut failures = Vec::new();
    for case in array(&document["comparisons"]) {
        compared += check_comparison(case, &mut failures);
    }
    for case in array(&document["srm"]) {
        let units = numbers(&case["units"]);
        let weights = numbers(&case["weights"]);
        let expected = number(&case["p_value"]);
        agree(
            &mut failures,
            &format!("srm {units:?} {weights:?}"),
            srm_p_value(&units, &weights),
            expected,
        );
        compared += 1;
    }
    for case in array(&document["fdr"]) {
        let ours = benjamini_hochberg(&numbers(&case["p_values"]));
        for (index, (ours, theirs)) in ours.iter().zip(numbers(&case["benjamini_hochberg"])).enumerate() {
            agree(&mut failures, &format!("bh {index}"), *ours, theirs);
            compared += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} figures disagree with gbstats:\n{}",
        failures.len(),
        failures.join("\n")
    );
    compared
}

fn check_comparison(case: &Value, failures: &mut Vec<String>) -> usize {
    let name = case["name"].as_str().unwrap_or("?");
    let settings = &case["settings"];
    let difference = match settings["difference"].as_str() {
        Some("absolute") => Difference::Absolute,
        _ => Difference::Relative,
    };
    let alpha = number(&settings["alpha"]);
    let (a, b) = estimate_pair(&arm(&case["control"]), &arm(&case["treatment"]));
    let frequentist = FrequentistSettings {
        alpha,
        difference,
        null_effect: 0.0,
    };
    let bayesian = BayesianSettings {
        alpha,
        difference,
        inverse: settings["inverse"].as_bool().unwrap_or(false),
        prior: EffectPrior {
            mean: number(&settings["prior_mean"]),
            variance: number(&settings["prior_variance"]),
            proper: settings["prior_proper"].as_bool().unwrap_or(false),
        },
    };
    let gbstats = &case["gbstats"];
    let mut compared = 0;

    let welch = welch_t_test(&a, &b, &frequentist);
    compared += compare(
        failures,
        &format!("{name} welch"),
        &gbstats["welch"],
        welch.map(|r| {
            vec![
                ("expected", r.effect),
                ("ci0", r.interval.0),
                ("ci1", r.interval.1),
                ("stddev", r.standard_error),
                ("p_value", r.p_value),
            ]
        }),
    );
    let sequential = sequential_t_test(&a, &b, &frequentist, number(&settings["sequential_tuning"]));
    compared += compare(
        failures,
        &format!("{name} sequential"),
        &gbstats["sequential"],
        sequential.map(|r| {
            vec![
                ("expected", r.effect),
                ("ci0", r.interval.0),
                ("ci1", r.interval.1),
                ("stddev", r.standard_error),
                ("p_value", r.p_value),
            ]
        }),
    );
    let bayes = effect_bayesian_test(&a, &b, &bayesian);
    compared += compare(
        failures,
        &format!("{name} bayesian"),
        &gbstats["bayesian"],
        bayes.map(|r| {
            vec![
                ("expected", r.effect),
                ("ci0", r.interval.0),
                ("ci1", r.interval.1),
                ("stddev", r.standard_deviation),
                ("chance_to_win", r.chance_to_win),
                ("risk0", r.risk.0),
                ("risk1", r.risk.1),
            ]
        }),
    );
    compared
}

/// Compares our figures (or refusal) with gbstats' output for one test.
fn compare(
    failures: &mut Vec<String>,
    label: &str,
    theirs: &Value,
    ours: Result<Vec<(&str, f64)>, Undefined>,
) -> usize {
    if theirs.get("exception").is_some() {
        // gbstats divides by zero here; any answer of ours is better than a crash.
        return 0;
    }
    let their_error = theirs["error"].as_str();
    match (ours, their_error) {
        (Err(ours), Some(theirs)) => {
            let expected = match ours {
                Undefined::BaselineZero => "ZERO_NEGATIVE_BASELINE_VARIATION",
                Undefined::ZeroVariance => "ZERO_NEGATIVE_VARIANCE",
                Undefined::NoUnits => "NO_UNITS_IN_VARIATION",
            };
            if expected != theirs {
                failures.push(format!("{label}: we refuse with {ours:?}, gbstats with {theirs}"));
            }
            1
        }
        (Err(ours), None) => {
            failures.push(format!("{label}: we refuse ({ours:?}), gbstats answers"));
            1
        }
        (Ok(_), Some(theirs)) => {
            failures.push(format!("{label}: we answer, gbstats refuses ({theirs})"));
            1
        }
        (Ok(figures), None) => {
            for (field, value) in &figures {
                let expected = match *field {
                    "ci0" => number(&theirs["ci"][0]),
                    "ci1" => number(&theirs["ci"][1]),
                    "risk0" => number(&theirs["risk"][0]),
                    "risk1" => number(&theirs["risk"][1]),
                    other => number(&theirs[other]),
                };
                agree(failures, &format!("{label} {field}"), *value, expected);
            }
            figures.len()
        }
    }
}

fn agree(failures: &mut Vec<String>, label: &str, ours: f64, theirs: f64) {
    let close = (ours - theirs).abs() <= RELATIVE * theirs.abs() + ABSOLUTE;
    if !close {
        failures.push(format!("{label}: ours {ours:e}, gbstats {theirs:e}"));
    }
}

fn arm(value: &Value) -> ArmStatistic {
    match value["type"].as_str() {
        Some("ratio") => ArmStatistic::Ratio {
            numerator: moments(&value["numerator"]),
            denominator: moments(&value["denominator"]),
            sum_of_products: number(&value["sum_of_products"]),
        },
        Some("cuped") => ArmStatistic::Cuped {
            post: moments(&value["post"]),
            pre: moments(&value["pre"]),
            sum_of_products: number(&value["sum_of_products"]),
        },
        _ => ArmStatistic::Simple(moments(&value["moments"])),
    }
}

fn moments(value: &Value) -> Moments {
    let n = number(&value["n"]);
    let sum = number(&value["sum"]);
    match value["kind"].as_str() {
        Some("binomial") => Moments::binomial(n, sum),
        _ => Moments::mean_of(n, sum, number(&value["sum_squares"])),
    }
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

fn numbers(value: &Value) -> Vec<f64> {
    array(value).iter().map(number).collect()
}

fn array(value: &Value) -> &Vec<Value> {
    value.as_array().unwrap_or_else(|| panic!("not an array: {value}"))
}
