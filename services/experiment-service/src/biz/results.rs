//! Results of one phase, computed from the kept sums with `switchyard-stats`: per metric and
//! arm the units and mean, each treatment against the control (frequentist, sequential or
//! Bayesian, as the experiment's analysis says), adjusted p-values across the goal metrics ×
//! arms, and the health checks (sample ratio mismatch, multiple exposures, too few units,
//! guardrails). Pure: the use case reads the sums, this turns them into figures.

use std::collections::HashMap;

use switchyard_stats::{
    ArmStatistic, BayesianSettings, Difference as StatsDifference, EffectPrior, Estimate, FrequentistSettings, Moments,
    SRM_THRESHOLD, Undefined, benjamini_hochberg, effect_bayesian_test, estimate_pair, holm_bonferroni,
    sequential_t_test, srm_p_value, welch_t_test,
};

use super::{
    dimensions::Slice,
    model::{Analysis, Difference, Engine, ExperimentSpec, MetricDefinition, MetricKind, MultipleTesting, Phase},
    sums::Sums,
};

/// Below this many units in an arm, results are flagged as not yet trustworthy.
pub const MIN_UNITS_PER_ARM: i64 = 100;
/// A Bayesian result is called when the chance to win passes this (or falls below 1 - it).
const WINNING_CHANCE: f64 = 0.95;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
    Guardrail,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Guardrail => "guardrail",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub effect: f64,
    pub interval: (f64, f64),
    pub p_value: Option<f64>,
    pub adjusted_p_value: Option<f64>,
    pub chance_to_win: Option<f64>,
    pub risk: Option<(f64, f64)>,
    pub significant: bool,
    pub undefined: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArmResult {
    pub variant: String,
    pub units: i64,
    pub mean: f64,
    pub comparison: Option<Comparison>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricResult {
    pub metric: String,
    pub role: Role,
    pub kind: MetricKind,
    pub inverse: bool,
    pub cuped: bool,
    pub arms: Vec<ArmResult>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub srm_p_value: f64,
    pub srm_detected: bool,
    pub multiple_exposures: i64,
    pub too_few_units: bool,
    pub guardrails_failing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// (units done, units in all) while the sums are rebuilt after a metric changed.
    pub rebuild: Option<(i64, i64)>,
    pub phase: u32,
    /// Units per arm, control first.
    pub units: Vec<(String, i64)>,
    pub metrics: Vec<MetricResult>,
    pub health: Health,
    /// Batches acknowledged but not yet in these figures (0: up to date).
    pub pending_batches: i64,
    /// The results per slice of a dimension, when asked for.
    pub breakdown: Option<Breakdown>,
}

/// Results split by the slices of one dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    pub dimension: String,
    pub slices: Vec<SliceResult>,
}

/// One slice analysed on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceResult {
    pub slice: Slice,
    /// Units per arm, control first.
    pub units: Vec<(String, i64)>,
    pub metrics: Vec<MetricResult>,
    pub srm_p_value: f64,
}

/// What results are computed from.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub spec: &'a ExperimentSpec,
    pub phase: &'a Phase,
    pub metrics: &'a HashMap<String, MetricDefinition>,
    /// (metric, variant) → sums.
    pub sums: &'a HashMap<(String, String), Sums>,
    /// Units per variant (single-arm units only) and units seen in several arms.
    pub units: &'a [(String, i64)],
    pub multiple_exposures: i64,
    pub pending_batches: i64,
}

pub fn compute(inputs: &Inputs<'_>) -> Results {
    let variants: Vec<&str> = inputs.phase.arms.iter().map(|arm| arm.variant.as_str()).collect();
    let units: Vec<(String, i64)> = variants
        .iter()
        .map(|variant| {
            let count = inputs.units.iter().find(|(v, _)| v == variant).map_or(0, |(_, n)| *n);
            ((*variant).to_owned(), count)
        })
        .collect();
    let roles = [
        (Role::Primary, &inputs.spec.primary_metrics),
        (Role::Secondary, &inputs.spec.secondary_metrics),
        (Role::Guardrail, &inputs.spec.guardrail_metrics),
    ];
    let mut metrics = Vec::new();
    let mut guardrails_failing = Vec::new();
    for (role, keys) in roles {
        for key in keys {
            let Some(definition) = inputs.metrics.get(key) else {
                continue;
            };
            let result = metric_result(inputs, key, role, definition, &variants);
            if role == Role::Guardrail && guardrail_harmed(inputs, key, definition, &variants) {
                guardrails_failing.push(key.clone());
            }
            metrics.push(result);
        }
    }
    adjust(
        &mut metrics,
        inputs.spec.analysis.multiple_testing,
        inputs.spec.analysis.alpha,
    );
    let observed: Vec<f64> = units.iter().map(|(_, n)| *n as f64).collect();
    let weights: Vec<f64> = inputs.phase.arms.iter().map(|arm| arm.weight).collect();
    let srm = srm_p_value(&observed, &weights);
    Results {
        rebuild: None,
        phase: inputs.phase.number,
        health: Health {
            srm_p_value: srm,
            srm_detected: srm < SRM_THRESHOLD,
            multiple_exposures: inputs.multiple_exposures,
            too_few_units: units.iter().any(|(_, n)| *n < MIN_UNITS_PER_ARM),
            guardrails_failing,
        },
        units,
        metrics,
        pending_batches: inputs.pending_batches,
        breakdown: None,
    }
}

/// The statistic of one arm for one metric, as gbstats would build it from the same sums.
fn arm_statistic(inputs: &Inputs<'_>, key: &str, definition: &MetricDefinition, variant: &str) -> ArmStatistic {
    let sums = inputs
        .sums
        .get(&(key.to_owned(), variant.to_owned()))
        .copied()
        .unwrap_or_default();
    let moments = |kind: MetricKind, sum: f64, sum_squares: f64| match kind {
        MetricKind::Binomial => Moments::binomial(sums.n, sum),
        _ => Moments::mean_of(sums.n, sum, sum_squares),
    };
    match definition.kind {
        MetricKind::Ratio => {
            let part = |key: &str| inputs.metrics.get(key).map_or(MetricKind::Mean, |metric| metric.kind);
            ArmStatistic::Ratio {
                numerator: moments(part(&definition.numerator), sums.sum_x, sums.sum_x2),
                denominator: moments(part(&definition.denominator), sums.sum_y, sums.sum_y2),
                sum_of_products: sums.sum_xy,
            }
        }
        kind if definition.cuped_lookback_days.is_some() => ArmStatistic::Cuped {
            post: moments(kind, sums.sum_x, sums.sum_x2),
            pre: moments(kind, sums.sum_y, sums.sum_y2),
            sum_of_products: sums.sum_xy,
        },
        kind => ArmStatistic::Simple(moments(kind, sums.sum_x, sums.sum_x2)),
    }
}

fn difference(analysis: &Analysis) -> StatsDifference {
    match analysis.difference {
        Difference::Relative => StatsDifference::Relative,
        Difference::Absolute => StatsDifference::Absolute,
    }
}

fn metric_result(
    inputs: &Inputs<'_>,
    key: &str,
    role: Role,
    definition: &MetricDefinition,
    variants: &[&str],
) -> MetricResult {
    let analysis = &inputs.spec.analysis;
    let control = arm_statistic(inputs, key, definition, variants[0]);
    let mut arms = Vec::with_capacity(variants.len());
    for (index, variant) in variants.iter().enumerate() {
        let treatment = arm_statistic(inputs, key, definition, variant);
        let (a, b) = estimate_pair(&control, &treatment);
        arms.push(ArmResult {
            variant: (*variant).to_owned(),
            units: b.n as i64,
            mean: b.unadjusted_mean,
            comparison: (index > 0).then(|| compare(analysis, definition.inverse, &a, &b)),
        });
    }
    MetricResult {
        metric: key.to_owned(),
        role,
        kind: definition.kind,
        inverse: definition.inverse,
        cuped: definition.cuped_lookback_days.is_some(),
        arms,
    }
}

fn compare(analysis: &Analysis, inverse: bool, a: &Estimate, b: &Estimate) -> Comparison {
    let undefined = |reason: Undefined| Comparison {
        undefined: Some(reason.to_string()),
        ..Comparison::default()
    };
    match analysis.engine {
        Engine::Frequentist => {
            let settings = FrequentistSettings {
                alpha: analysis.alpha,
                difference: difference(analysis),
                null_effect: 0.0,
            };
            let result = if analysis.sequential {
                sequential_t_test(a, b, &settings, analysis.sequential_tuning)
            } else {
                welch_t_test(a, b, &settings)
            };
            match result {
                Ok(result) => Comparison {
                    effect: result.effect,
                    interval: result.interval,
                    p_value: Some(result.p_value),
                    adjusted_p_value: Some(result.p_value),
                    significant: result.p_value < analysis.alpha,
                    ..Comparison::default()
                },
                Err(reason) => undefined(reason),
            }
        }
        Engine::Bayesian => {
            let settings = BayesianSettings {
                alpha: analysis.alpha,
                difference: difference(analysis),
                inverse,
                prior: EffectPrior::default(),
            };
            match effect_bayesian_test(a, b, &settings) {
                Ok(result) => Comparison {
                    effect: result.effect,
                    interval: result.interval,
                    chance_to_win: Some(result.chance_to_win),
                    risk: Some(result.risk),
                    significant: !(1.0 - WINNING_CHANCE..=WINNING_CHANCE).contains(&result.chance_to_win),
                    ..Comparison::default()
                },
                Err(reason) => undefined(reason),
            }
        }
    }
}

/// Adjusts the p-values of the goal metrics (primary and secondary) × treatment arms.
fn adjust(metrics: &mut [MetricResult], method: MultipleTesting, alpha: f64) {
    let mut slots = Vec::new();
    let mut p_values = Vec::new();
    for (m, metric) in metrics.iter().enumerate() {
        if metric.role == Role::Guardrail {
            continue;
        }
        for (a, arm) in metric.arms.iter().enumerate() {
            if let Some(p) = arm.comparison.as_ref().and_then(|c| c.p_value) {
                slots.push((m, a));
                p_values.push(p);
            }
        }
    }
    let adjusted = match method {
        MultipleTesting::Holm => holm_bonferroni(&p_values),
        MultipleTesting::BenjaminiHochberg => benjamini_hochberg(&p_values),
        MultipleTesting::None => p_values,
    };
    for ((m, a), p) in slots.into_iter().zip(adjusted) {
        if let Some(comparison) = metrics[m].arms[a].comparison.as_mut() {
            comparison.adjusted_p_value = Some(p);
            comparison.significant = p < alpha;
        }
    }
}

/// A guardrail is harmed when, on the always-valid sequential test, some arm's interval lies
/// wholly on the bad side of zero (above for inverse metrics, below otherwise).
fn guardrail_harmed(inputs: &Inputs<'_>, key: &str, definition: &MetricDefinition, variants: &[&str]) -> bool {
    let analysis = &inputs.spec.analysis;
    let settings = FrequentistSettings {
        alpha: analysis.alpha,
        difference: difference(analysis),
        null_effect: 0.0,
    };
    let control = arm_statistic(inputs, key, definition, variants[0]);
    variants[1..].iter().any(|variant| {
        let treatment = arm_statistic(inputs, key, definition, variant);
        let (a, b) = estimate_pair(&control, &treatment);
        match sequential_t_test(&a, &b, &settings, analysis.sequential_tuning) {
            Ok(result) if definition.inverse => result.interval.0 > 0.0,
            Ok(result) => result.interval.1 < 0.0,
            Err(_) => false,
        }
    })
}
