//! Experiments and metrics as the domain sees them, stored as JSON definitions so the same
//! repository code runs on PostgreSQL and SQLite. Checks that need nothing but the value
//! itself live here; checks against other resources live in the use cases.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_platform::{error::FieldViolation, names::check_id};

use super::{
    dimensions::MAX_DIMENSIONS,
    layers::{Exclusions, LayerRange, range_violations},
};

pub(super) const MAX_TEXT: usize = 4_000;
pub(super) const MAX_SHORT: usize = 256;
const MAX_ENVIRONMENTS: usize = 16;
pub const MAX_ARMS: usize = 20;
const MAX_METRICS: usize = 50;
/// Rules larger than this are refused; flags take the same JSON Logic.
const MAX_TARGETING_BYTES: usize = 64 * 1024;
/// Conversion windows up to a year.
const MAX_WINDOW_HOURS: u32 = 24 * 366;
pub const DEFAULT_LOOKBACK_DAYS: u32 = 14;
const MAX_LOOKBACK_DAYS: u32 = 180;
/// Exposures keep attribute names up to this long.
const MAX_DIMENSION_NAME: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Binomial,
    Mean,
    Ratio,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum Capping {
    None,
    /// Per-unit values above this count as this.
    Absolute(f64),
    /// Per-unit values above this quantile of all units count as that quantile.
    Percentile(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDefinition {
    pub display_name: String,
    pub description: String,
    pub kind: MetricKind,
    /// The event name for binomial and mean metrics.
    pub event: String,
    /// Metric keys, for ratios.
    pub numerator: String,
    pub denominator: String,
    /// 0: until the experiment stops.
    pub window_hours: u32,
    pub capping: Capping,
    pub inverse: bool,
    /// CUPED's lookback in days, when enabled.
    pub cuped_lookback_days: Option<u32>,
}

/// A metric as stored: its key, definition and version (the etag).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMetric {
    pub key: String,
    pub definition: MetricDefinition,
    pub version: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl MetricDefinition {
    /// Everything checkable on the metric alone; ratio parts are checked against the project.
    pub fn violations(&self) -> Vec<FieldViolation> {
        let mut out = Vec::new();
        text(&mut out, "metric.display_name", &self.display_name, MAX_SHORT);
        text(&mut out, "metric.description", &self.description, MAX_TEXT);
        match self.kind {
            MetricKind::Binomial | MetricKind::Mean => {
                if self.event.is_empty() {
                    out.push(FieldViolation::new(
                        "metric.event",
                        "required for binomial and mean metrics",
                    ));
                } else {
                    text(&mut out, "metric.event", &self.event, MAX_SHORT);
                }
                if !self.numerator.is_empty() || !self.denominator.is_empty() {
                    out.push(FieldViolation::new(
                        "metric.numerator",
                        "only ratio metrics have a numerator and denominator",
                    ));
                }
            }
            MetricKind::Ratio => {
                if !self.event.is_empty() {
                    out.push(FieldViolation::new(
                        "metric.event",
                        "a ratio takes its events from its numerator and denominator metrics",
                    ));
                }
                for (field, key) in [
                    ("metric.numerator", &self.numerator),
                    ("metric.denominator", &self.denominator),
                ] {
                    if let Err(violation) = check_id(field, key) {
                        out.push(violation);
                    }
                }
                if self.cuped_lookback_days.is_some() {
                    out.push(FieldViolation::new(
                        "metric.cuped",
                        "CUPED applies to binomial and mean metrics",
                    ));
                }
            }
        }
        if self.window_hours > MAX_WINDOW_HOURS {
            out.push(FieldViolation::new(
                "metric.window_hours",
                format!("at most {MAX_WINDOW_HOURS} (a year)"),
            ));
        }
        match self.capping {
            Capping::Absolute(value) if !(value.is_finite() && value > 0.0) => {
                out.push(FieldViolation::new(
                    "metric.capping.value",
                    "an absolute cap must be positive",
                ));
            }
            Capping::Percentile(value) if !(value > 0.0 && value < 1.0) => {
                out.push(FieldViolation::new(
                    "metric.capping.value",
                    "a percentile cap is a quantile between 0 and 1, such as 0.99",
                ));
            }
            _ => {}
        }
        if let Some(days) = self.cuped_lookback_days
            && !(1..=MAX_LOOKBACK_DAYS).contains(&days)
        {
            out.push(FieldViolation::new(
                "metric.cuped.lookback_days",
                format!("between 1 and {MAX_LOOKBACK_DAYS}"),
            ));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    Running,
    Stopped,
    Archived,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Running => "running",
            State::Stopped => "stopped",
            State::Archived => "archived",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub variant: String,
    pub weight: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    Frequentist,
    Bayesian,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    Relative,
    Absolute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultipleTesting {
    Holm,
    BenjaminiHochberg,
    None,
}

/// How results are computed; defaults are filled in when the experiment is written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub engine: Engine,
    pub sequential: bool,
    pub sequential_tuning: f64,
    pub alpha: f64,
    pub difference: Difference,
    pub multiple_testing: MultipleTesting,
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            engine: Engine::Frequentist,
            sequential: false,
            sequential_tuning: switchyard_stats::DEFAULT_SEQUENTIAL_TUNING,
            alpha: 0.05,
            difference: Difference::Relative,
            multiple_testing: MultipleTesting::Holm,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub number: u32,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub coverage: f64,
    pub arms: Vec<Arm>,
    pub reason: String,
    pub reassigned: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Ship,
    RollBack,
    NoDecision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: DecisionKind,
    pub variant: String,
    pub reason: String,
    pub actor: String,
    pub decided_ms: i64,
}

/// What the caller sets on an experiment; the rest ([`Lifecycle`]) only moves through
/// start, stop and archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    pub display_name: String,
    pub hypothesis: String,
    pub owner: String,
    pub flag: String,
    pub environments: Vec<String>,
    /// The first arm is the control.
    pub arms: Vec<Arm>,
    pub coverage: f64,
    pub targeting: Option<Value>,
    pub segment: Option<String>,
    pub bucketing_attribute: String,
    pub seed: String,
    pub primary_metrics: Vec<String>,
    pub secondary_metrics: Vec<String>,
    pub guardrail_metrics: Vec<String>,
    pub analysis: Analysis,
    /// Where to POST a notice when the experiment stops itself; empty: nowhere.
    #[serde(default)]
    pub notification_webhook: String,
    /// The ranges it takes in layers.
    #[serde(default)]
    pub layers: Vec<LayerRange>,
    /// Exposure attributes the results can be broken down by (at most
    /// [`MAX_DIMENSIONS`](super::dimensions::MAX_DIMENSIONS)).
    #[serde(default)]
    pub dimensions: Vec<String>,
}

/// Where an experiment is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub state: State,
    pub phases: Vec<Phase>,
    pub decision: Option<Decision>,
    /// The flag's own targeting per environment when the experiment first started: what units
    /// outside the experiment keep getting, and what the flag returns to after it.
    #[serde(default)]
    pub original_targeting: std::collections::BTreeMap<String, Option<Value>>,
    /// The layer ranges and holdouts it leaves alone, resolved when it first started.
    #[serde(default)]
    pub exclusions: Exclusions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentDefinition {
    pub spec: ExperimentSpec,
    pub lifecycle: Lifecycle,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredExperiment {
    pub key: String,
    pub definition: ExperimentDefinition,
    pub version: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The bucketing attribute when none is given: flagd's targeting key.
pub const TARGETING_KEY: &str = "targetingKey";

/// An `http://host[:port]/path` URL without spaces or control characters.
fn webhook_is_valid(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    url.len() <= 2_048
        && !host.is_empty()
        && !host.contains('@')
        && url.chars().all(|c| c.is_ascii_graphic())
        && host.parse::<http::uri::Authority>().is_ok()
}

impl ExperimentSpec {
    /// Everything checkable on the experiment alone; the flag, its variants and the metrics
    /// are checked against the project.
    pub fn violations(&self) -> Vec<FieldViolation> {
        let mut out = Vec::new();
        text(&mut out, "experiment.display_name", &self.display_name, MAX_SHORT);
        text(&mut out, "experiment.hypothesis", &self.hypothesis, MAX_TEXT);
        text(&mut out, "experiment.owner", &self.owner, MAX_SHORT);
        if let Err(violation) = check_id("experiment.flag", &self.flag) {
            out.push(violation);
        }
        self.environment_violations(&mut out);
        self.arm_violations(&mut out);
        range_violations(&self.layers, &mut out);
        if !self.notification_webhook.is_empty() && !webhook_is_valid(&self.notification_webhook) {
            out.push(FieldViolation::new(
                "experiment.notification_webhook",
                "an http:// URL with a host, at most 2,048 characters (https is not supported yet)",
            ));
        }
        if !(self.coverage > 0.0 && self.coverage <= 1.0) {
            out.push(FieldViolation::new(
                "experiment.coverage",
                "a share of units: above 0, at most 1",
            ));
        }
        if let Some(targeting) = &self.targeting {
            let size = serde_json::to_string(targeting).map_or(usize::MAX, |text| text.len());
            if !targeting.is_object() || size > MAX_TARGETING_BYTES {
                out.push(FieldViolation::new(
                    "experiment.targeting",
                    format!("a JSON Logic rule (an object) of at most {MAX_TARGETING_BYTES} bytes"),
                ));
            }
            if self.segment.is_some() {
                out.push(FieldViolation::new(
                    "experiment.segment",
                    "give a targeting rule or a segment, not both",
                ));
            }
        }
        if let Some(segment) = &self.segment
            && let Err(violation) = check_id("experiment.segment", segment)
        {
            out.push(violation);
        }
        text(
            &mut out,
            "experiment.bucketing_attribute",
            &self.bucketing_attribute,
            MAX_SHORT,
        );
        text(&mut out, "experiment.seed", &self.seed, MAX_SHORT);
        self.metric_violations(&mut out);
        self.dimension_violations(&mut out);
        analysis_violations(&self.analysis, &mut out);
        out
    }

    fn environment_violations(&self, out: &mut Vec<FieldViolation>) {
        if self.environments.is_empty() || self.environments.len() > MAX_ENVIRONMENTS {
            out.push(FieldViolation::new(
                "experiment.environments",
                format!("one to {MAX_ENVIRONMENTS} environments"),
            ));
        }
        for (index, environment) in self.environments.iter().enumerate() {
            if let Err(violation) = check_id(&format!("experiment.environments[{index}]"), environment) {
                out.push(violation);
            }
            if self.environments[..index].contains(environment) {
                out.push(FieldViolation::new(
                    format!("experiment.environments[{index}]"),
                    "listed twice",
                ));
            }
        }
    }

    fn arm_violations(&self, out: &mut Vec<FieldViolation>) {
        if self.arms.len() < 2 || self.arms.len() > MAX_ARMS {
            out.push(FieldViolation::new(
                "experiment.arms",
                format!("two to {MAX_ARMS} arms, the first being the control"),
            ));
        }
        for (index, arm) in self.arms.iter().enumerate() {
            let field = format!("experiment.arms[{index}]");
            if arm.variant.is_empty() || arm.variant.len() > MAX_SHORT {
                out.push(FieldViolation::new(
                    format!("{field}.variant"),
                    "the name of one of the flag's variants",
                ));
            }
            if self.arms[..index].iter().any(|other| other.variant == arm.variant) {
                out.push(FieldViolation::new(
                    format!("{field}.variant"),
                    "each variant is one arm",
                ));
            }
            if !(arm.weight.is_finite() && arm.weight > 0.0) {
                out.push(FieldViolation::new(format!("{field}.weight"), "a positive weight"));
            }
        }
    }

    fn metric_violations(&self, out: &mut Vec<FieldViolation>) {
        let lists = [
            ("experiment.primary_metrics", &self.primary_metrics),
            ("experiment.secondary_metrics", &self.secondary_metrics),
            ("experiment.guardrail_metrics", &self.guardrail_metrics),
        ];
        for (field, keys) in lists {
            if keys.len() > MAX_METRICS {
                out.push(FieldViolation::new(field, format!("at most {MAX_METRICS}")));
            }
            for (index, key) in keys.iter().enumerate() {
                if let Err(violation) = check_id(&format!("{field}[{index}]"), key) {
                    out.push(violation);
                }
            }
        }
    }

    fn dimension_violations(&self, out: &mut Vec<FieldViolation>) {
        if self.dimensions.len() > MAX_DIMENSIONS {
            out.push(FieldViolation::new(
                "experiment.dimensions",
                format!("at most {MAX_DIMENSIONS} exposure attributes"),
            ));
        }
        for (index, dimension) in self.dimensions.iter().enumerate() {
            let field = format!("experiment.dimensions[{index}]");
            if dimension.is_empty() || dimension.len() > MAX_DIMENSION_NAME || dimension.chars().any(char::is_control) {
                out.push(FieldViolation::new(
                    &field,
                    format!("an exposure attribute name: 1 to {MAX_DIMENSION_NAME} bytes, no control characters"),
                ));
            }
            if self.dimensions[..index].contains(dimension) {
                out.push(FieldViolation::new(&field, "listed twice"));
            }
        }
    }

    /// Whether the kept sums of an experiment that ran under `old` must be recounted for this
    /// spec: it counts other metrics or splits by other dimensions.
    pub fn analysis_changed(&self, old: &ExperimentSpec) -> bool {
        self.metric_keys() != old.metric_keys() || self.dimensions != old.dimensions
    }

    /// The experiment's metrics capped at a percentile of all units' values, which no running
    /// sum can hold: (key, percentile, whether the CUPED pre-period value is capped too).
    /// Ratios are left out (their parts are not capped).
    pub fn percentile_capped<'a>(
        &self,
        metrics: &'a std::collections::HashMap<String, MetricDefinition>,
    ) -> Vec<(&'a str, f64, bool)> {
        let used = self.metric_keys();
        metrics
            .iter()
            .filter(|(key, metric)| metric.kind != MetricKind::Ratio && used.contains(&key.as_str()))
            .filter_map(|(key, metric)| match metric.capping {
                Capping::Percentile(percentile) => {
                    Some((key.as_str(), percentile, metric.cuped_lookback_days.is_some()))
                }
                _ => None,
            })
            .collect()
    }

    /// Every metric key the experiment names, once each.
    pub fn metric_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        let all = self
            .primary_metrics
            .iter()
            .chain(&self.secondary_metrics)
            .chain(&self.guardrail_metrics);
        for key in all {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        keys
    }

    /// The weights normalised to sum to 1.
    pub fn shares(&self) -> Vec<f64> {
        let total: f64 = self.arms.iter().map(|arm| arm.weight).sum();
        self.arms.iter().map(|arm| arm.weight / total).collect()
    }
}

fn analysis_violations(analysis: &Analysis, out: &mut Vec<FieldViolation>) {
    if !(analysis.alpha > 0.0 && analysis.alpha < 0.5) {
        out.push(FieldViolation::new(
            "experiment.analysis.alpha",
            "between 0 and 0.5, such as 0.05",
        ));
    }
    if !(analysis.sequential_tuning.is_finite() && analysis.sequential_tuning >= 1.0) {
        out.push(FieldViolation::new(
            "experiment.analysis.sequential_tuning",
            "the sample size N* the sequential test is tuned for: at least 1",
        ));
    }
    if analysis.sequential && analysis.engine == Engine::Bayesian {
        out.push(FieldViolation::new(
            "experiment.analysis.sequential",
            "sequential testing is frequentist; the Bayesian engine is safe to peek at as it is",
        ));
    }
}

pub(super) fn text(out: &mut Vec<FieldViolation>, field: &str, value: &str, max: usize) {
    if value.len() > max {
        out.push(FieldViolation::new(field, format!("at most {max} bytes")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        out.push(FieldViolation::new(field, "no control characters"));
    }
}
