//! Health gates: what a deployment checks at every step and during its bake, and how a
//! check's outcome is judged. Running a check (asking Prometheus, summing client reports)
//! is the prober's job; this module is pure.
//!
//! The judgement follows Argo Rollouts' analysis: the failure condition wins, then the
//! success condition; neither holding (or no data) is inconclusive, and an inconclusive check
//! pauses the deployment for a human instead of guessing. More failures than the gate's
//! failure limit roll the deployment back. A step moves on only after each gate has passed
//! `consecutive_successes` times in a row within it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::biz::error::{ConfigError, ConfigResult};

/// Longest query or condition, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// The most gates one deployment may have.
pub const MAX_GATES: usize = 10;
/// The shortest check interval.
pub const MIN_INTERVAL_MS: i64 = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Unique within the deployment; events name it as `gate:{name}`.
    pub name: String,
    pub check: Check,
    /// How often it is checked.
    pub interval_ms: i64,
    /// Failures tolerated; one more rolls the deployment back.
    pub failure_limit: u32,
    /// Passes in a row each step needs before it may end (0: none needed).
    pub consecutive_successes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Check {
    /// A PromQL instant query. `{{release}}`, `{{previous_release}}`, `{{environment}}`,
    /// `{{project}}`, `{{target}}` and `{{percentage}}` are replaced before it is sent. The
    /// conditions are CEL over `result` (the first sample, a double) and `results` (all).
    Prometheus {
        address: String,
        query: String,
        success_condition: String,
        failure_condition: String,
    },
    /// Error rates clients report with `ReportHealth`: the new version's against the
    /// previous one's, over the deployment so far.
    ClientHealth {
        /// Highest acceptable error rate of the new version (0–1).
        max_error_rate: f64,
        /// Highest acceptable increase over the previous version's rate, relative
        /// (0.5: at most 50% worse); 0 disables the comparison.
        max_relative_increase: f64,
        /// Reports (ok + error) the new version needs before it is judged.
        min_sample: u64,
    },
}

/// What a gate has seen so far in the current step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub failures: u32,
    pub successes_in_row: u32,
    pub last_check_ms: i64,
    pub last_outcome: String,
    pub last_detail: String,
}

/// The judgement of one check.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed(String),
    Failed(String),
    Inconclusive(String),
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Passed(_) => "passed",
            Outcome::Failed(_) => "failed",
            Outcome::Inconclusive(_) => "inconclusive",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Passed(detail) | Outcome::Failed(detail) | Outcome::Inconclusive(detail) => detail,
        }
    }
}

/// Values a Prometheus query template may use.
#[derive(Debug, Clone)]
pub struct QueryArguments {
    pub project: String,
    pub environment: String,
    pub target: String,
    pub release: i64,
    pub previous_release: i64,
    pub percentage: f64,
}

/// The query with its `{{…}}` arguments replaced.
pub fn render_query(template: &str, arguments: &QueryArguments) -> String {
    template
        .replace("{{project}}", &arguments.project)
        .replace("{{environment}}", &arguments.environment)
        .replace("{{target}}", &arguments.target)
        .replace("{{previous_release}}", &arguments.previous_release.to_string())
        .replace("{{release}}", &arguments.release.to_string())
        .replace("{{percentage}}", &arguments.percentage.to_string())
}

impl Gate {
    /// Checks a gate as given by a user.
    pub fn validate(&self, field: &str) -> ConfigResult<()> {
        let valid_name = !self.name.is_empty()
            && self.name.len() <= 63
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !valid_name {
            return Err(ConfigError::invalid(
                &format!("{field}.name"),
                "1-63 of A-Z a-z 0-9 - _",
            ));
        }
        if self.interval_ms < MIN_INTERVAL_MS || self.interval_ms > 3_600_000 {
            return Err(ConfigError::invalid(
                &format!("{field}.interval"),
                "between 100 ms and 1 hour",
            ));
        }
        if self.failure_limit > 100 || self.consecutive_successes > 100 {
            return Err(ConfigError::invalid(
                &format!("{field}.failure_limit"),
                "failure_limit and consecutive_successes are at most 100",
            ));
        }
        match &self.check {
            Check::Prometheus {
                address,
                query,
                success_condition,
                failure_condition,
            } => validate_prometheus(field, address, query, success_condition, failure_condition),
            Check::ClientHealth {
                max_error_rate,
                max_relative_increase,
                min_sample,
            } => {
                if !(0.0..=1.0).contains(max_error_rate) {
                    return Err(ConfigError::invalid(
                        &format!("{field}.max_error_rate"),
                        "between 0 and 1",
                    ));
                }
                if !max_relative_increase.is_finite() || *max_relative_increase < 0.0 {
                    return Err(ConfigError::invalid(
                        &format!("{field}.max_relative_increase"),
                        "0 or more",
                    ));
                }
                if *min_sample > 1_000_000_000 {
                    return Err(ConfigError::invalid(&format!("{field}.min_sample"), "at most 10^9"));
                }
                Ok(())
            }
        }
    }
}

fn validate_prometheus(field: &str, address: &str, query: &str, success: &str, failure: &str) -> ConfigResult<()> {
    let is_http = address.starts_with("http://") && address.len() > "http://".len();
    if !is_http || address.len() > 2048 {
        return Err(ConfigError::invalid(
            &format!("{field}.address"),
            "Prometheus's base URL, http://host:port",
        ));
    }
    if query.trim().is_empty() || query.len() > MAX_EXPRESSION_BYTES {
        return Err(ConfigError::invalid(
            &format!("{field}.query"),
            format!("a PromQL query of 1-{MAX_EXPRESSION_BYTES} bytes"),
        ));
    }
    if success.trim().is_empty() && failure.trim().is_empty() {
        return Err(ConfigError::invalid(
            &format!("{field}.success_condition"),
            "a success condition, a failure condition, or both",
        ));
    }
    for (name, condition) in [("success_condition", success), ("failure_condition", failure)] {
        if condition.trim().is_empty() {
            continue;
        }
        compile(condition).map_err(|reason| ConfigError::invalid(&format!("{field}.{name}"), reason))?;
    }
    Ok(())
}

fn compile(condition: &str) -> Result<cel::Program, String> {
    if condition.len() > MAX_EXPRESSION_BYTES {
        return Err(format!("at most {MAX_EXPRESSION_BYTES} bytes"));
    }
    cel::Program::compile(condition).map_err(|error| format!("does not compile: {error}"))
}

/// What a Prometheus instant query returned, reduced to what conditions see.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// Sample values (a scalar is one sample, an empty vector none).
    Samples(Vec<f64>),
    /// A type conditions cannot judge (a string), described.
    Unusable(String),
}

/// Judges a Prometheus result against the gate's conditions.
pub fn judge_prometheus(result: &QueryResult, success: &str, failure: &str) -> Outcome {
    let samples = match result {
        QueryResult::Unusable(what) => return Outcome::Inconclusive(format!("the query returned {what}")),
        QueryResult::Samples(samples) if samples.is_empty() => {
            return Outcome::Inconclusive("the query returned no data".to_owned());
        }
        QueryResult::Samples(samples) => samples,
    };
    if samples.iter().any(|sample| sample.is_nan()) {
        return Outcome::Inconclusive(format!("the query returned NaN ({samples:?})"));
    }
    let shown = describe(samples);
    let holds = |condition: &str| -> Result<Option<bool>, String> {
        if condition.trim().is_empty() {
            return Ok(None);
        }
        evaluate(condition, samples).map(Some)
    };
    let failed = match holds(failure) {
        Ok(value) => value,
        Err(error) => return Outcome::Inconclusive(error),
    };
    let passed = match holds(success) {
        Ok(value) => value,
        Err(error) => return Outcome::Inconclusive(error),
    };
    match (failed, passed) {
        (Some(true), _) => Outcome::Failed(format!("result {shown}: failure condition `{failure}` holds")),
        (_, Some(true)) => Outcome::Passed(format!("result {shown}: success condition `{success}` holds")),
        (None, Some(false)) => Outcome::Failed(format!("result {shown}: success condition `{success}` does not hold")),
        (Some(false), None) => Outcome::Passed(format!("result {shown}: failure condition `{failure}` does not hold")),
        _ => Outcome::Inconclusive(format!("result {shown}: neither condition holds")),
    }
}

fn describe(samples: &[f64]) -> String {
    match samples {
        [one] => one.to_string(),
        many => format!("{many:?}"),
    }
}

fn evaluate(condition: &str, samples: &[f64]) -> Result<bool, String> {
    let program = compile(condition)?;
    let mut context = cel::Context::default();
    let first = samples.first().copied().unwrap_or(f64::NAN);
    context.add_variable_from_value("result", cel::Value::Float(first));
    let all: Vec<cel::Value> = samples.iter().map(|sample| cel::Value::Float(*sample)).collect();
    context.add_variable_from_value("results", cel::Value::List(Arc::new(all)));
    match program.execute(&context) {
        Ok(cel::Value::Bool(value)) => Ok(value),
        Ok(other) => Err(format!(
            "condition `{condition}` returned a {} instead of a bool",
            other.type_of()
        )),
        Err(error) => Err(format!("condition `{condition}` could not be evaluated: {error}")),
    }
}

/// Counts reported by clients for one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    pub ok: u64,
    pub errors: u64,
}

impl HealthCounts {
    pub fn total(self) -> u64 {
        self.ok.saturating_add(self.errors)
    }

    pub fn error_rate(self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.errors as f64 / total as f64)
    }
}

/// Judges the new version's client-reported error rate, absolutely and against the previous one.
pub fn judge_client_health(
    candidate: HealthCounts,
    previous: HealthCounts,
    max_error_rate: f64,
    max_relative_increase: f64,
    min_sample: u64,
) -> Outcome {
    let total = candidate.total();
    if total < min_sample.max(1) {
        return Outcome::Inconclusive(format!(
            "{total} reports for the new version, {} needed",
            min_sample.max(1)
        ));
    }
    let rate = candidate.error_rate().unwrap_or(0.0);
    let shown = format!("error rate {:.4} ({} of {total})", rate, candidate.errors);
    if rate > max_error_rate {
        return Outcome::Failed(format!("{shown} is above {max_error_rate}"));
    }
    let Some(before) = previous.error_rate() else {
        return Outcome::Passed(format!("{shown}; no reports for the previous version to compare"));
    };
    if max_relative_increase > 0.0 && rate > before * (1.0 + max_relative_increase) && rate > 0.0 {
        return Outcome::Failed(format!(
            "{shown} is more than {:.0}% above the previous version's {before:.4}",
            max_relative_increase * 100.0
        ));
    }
    Outcome::Passed(format!("{shown}; previous version {before:.4}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_condition_wins_then_success_then_inconclusive() {
        let samples = QueryResult::Samples(vec![0.07]);
        assert!(matches!(
            judge_prometheus(&samples, "result < 0.05", "result > 0.06"),
            Outcome::Failed(_)
        ));
        let fine = QueryResult::Samples(vec![0.01]);
        assert!(matches!(
            judge_prometheus(&fine, "result < 0.05", "result > 0.06"),
            Outcome::Passed(_)
        ));
        let between = QueryResult::Samples(vec![0.055]);
        assert!(matches!(
            judge_prometheus(&between, "result < 0.05", "result > 0.06"),
            Outcome::Inconclusive(_)
        ));
    }

    #[test]
    fn one_condition_alone_decides_both_ways() {
        let high = QueryResult::Samples(vec![0.5]);
        assert!(matches!(
            judge_prometheus(&high, "result < 0.05", ""),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            judge_prometheus(&high, "", "result > 0.6"),
            Outcome::Passed(_)
        ));
    }

    #[test]
    fn no_data_a_string_or_nan_is_inconclusive() {
        let empty = QueryResult::Samples(vec![]);
        assert!(matches!(
            judge_prometheus(&empty, "result < 1.0", ""),
            Outcome::Inconclusive(_)
        ));
        let text = QueryResult::Unusable("a string".into());
        assert!(matches!(
            judge_prometheus(&text, "result < 1.0", ""),
            Outcome::Inconclusive(_)
        ));
        let nan = QueryResult::Samples(vec![f64::NAN]);
        assert!(matches!(
            judge_prometheus(&nan, "result < 1.0", ""),
            Outcome::Inconclusive(_)
        ));
        let wrong_type = QueryResult::Samples(vec![1.0]);
        assert!(matches!(
            judge_prometheus(&wrong_type, "result + 1.0", ""),
            Outcome::Inconclusive(_)
        ));
    }

    #[test]
    fn every_sample_is_available_as_results() {
        let samples = QueryResult::Samples(vec![0.01, 0.2]);
        assert!(matches!(
            judge_prometheus(&samples, "results.all(r, r < 0.1)", ""),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn client_health_needs_a_sample_then_compares_rates() {
        let few = HealthCounts { ok: 5, errors: 0 };
        let none = HealthCounts::default();
        assert!(matches!(
            judge_client_health(few, none, 0.05, 0.0, 100),
            Outcome::Inconclusive(_)
        ));
        let bad = HealthCounts { ok: 90, errors: 10 };
        assert!(matches!(
            judge_client_health(bad, none, 0.05, 0.0, 100),
            Outcome::Failed(_)
        ));
        let worse = HealthCounts { ok: 970, errors: 30 };
        let before = HealthCounts { ok: 990, errors: 10 };
        assert!(matches!(
            judge_client_health(worse, before, 0.05, 0.5, 100),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            judge_client_health(worse, before, 0.05, 0.0, 100),
            Outcome::Passed(_)
        ));
        let same = HealthCounts { ok: 990, errors: 10 };
        assert!(matches!(
            judge_client_health(same, before, 0.05, 0.5, 100),
            Outcome::Passed(_)
        ));
    }

    #[test]
    fn query_arguments_are_filled_in() {
        let arguments = QueryArguments {
            project: "shop".into(),
            environment: "prod".into(),
            target: "checkout".into(),
            release: 7,
            previous_release: 6,
            percentage: 12.5,
        };
        let query = render_query(
            "rate(errors{env=\"{{environment}}\",release=\"{{release}}\",prev=\"{{previous_release}}\"}[1m]) * {{percentage}}",
            &arguments,
        );
        assert_eq!(query, "rate(errors{env=\"prod\",release=\"7\",prev=\"6\"}[1m]) * 12.5");
    }
}
