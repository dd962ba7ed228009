//! Protobuf ↔ domain for metrics and experiments. Unset enum values and zeros stand for the
//! documented defaults; unknown enum numbers are field violations.

use serde_json::Value;
use switchyard_api::experiments::v1 as pb;
use switchyard_platform::{
    error::FieldViolation,
    proto_json::{from_proto_struct, timestamp, to_proto_struct},
};

use crate::biz::{
    model::{
        Analysis, Arm, Capping, DEFAULT_LOOKBACK_DAYS, Decision, DecisionKind, Difference, Engine, ExperimentSpec,
        MetricDefinition, MetricKind, MultipleTesting, Phase, State, StoredExperiment, StoredMetric,
    },
    repository::ExperimentVersion,
};

fn unknown(field: &str, value: i32) -> FieldViolation {
    FieldViolation::new(field, format!("unknown value {value}"))
}

pub fn metric_from(metric: pb::Metric) -> Result<MetricDefinition, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let kind = match pb::MetricType::try_from(metric.r#type) {
        Ok(pb::MetricType::Binomial) => MetricKind::Binomial,
        Ok(pb::MetricType::Mean) => MetricKind::Mean,
        Ok(pb::MetricType::Ratio) => MetricKind::Ratio,
        Ok(pb::MetricType::Unspecified) => {
            violations.push(FieldViolation::new(
                "metric.type",
                "METRIC_TYPE_BINOMIAL, _MEAN or _RATIO",
            ));
            MetricKind::Mean
        }
        Err(_) => {
            violations.push(unknown("metric.type", metric.r#type));
            MetricKind::Mean
        }
    };
    let capping = match metric.capping {
        None => Capping::None,
        Some(capping) => match pb::CappingType::try_from(capping.r#type) {
            Ok(pb::CappingType::Unspecified) => Capping::None,
            Ok(pb::CappingType::Absolute) => Capping::Absolute(capping.value),
            Ok(pb::CappingType::Percentile) => Capping::Percentile(capping.value),
            Err(_) => {
                violations.push(unknown("metric.capping.type", capping.r#type));
                Capping::None
            }
        },
    };
    let window_hours = u32::try_from(metric.window_hours).unwrap_or_else(|_| {
        violations.push(FieldViolation::new(
            "metric.window_hours",
            "0 (no window) or a number of hours",
        ));
        0
    });
    let cuped_lookback_days = match metric.cuped {
        Some(cuped) if cuped.enabled => Some(match cuped.lookback_days {
            0 => DEFAULT_LOOKBACK_DAYS,
            days => u32::try_from(days).unwrap_or(0),
        }),
        _ => None,
    };
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(MetricDefinition {
        display_name: metric.display_name,
        description: metric.description,
        kind,
        event: metric.event,
        numerator: metric.numerator,
        denominator: metric.denominator,
        window_hours,
        capping,
        inverse: metric.inverse,
        cuped_lookback_days,
    })
}

pub fn metric_to(project: &str, stored: &StoredMetric) -> pb::Metric {
    let definition = &stored.definition;
    let (capping_type, capping_value) = match definition.capping {
        Capping::None => (pb::CappingType::Unspecified, 0.0),
        Capping::Absolute(value) => (pb::CappingType::Absolute, value),
        Capping::Percentile(value) => (pb::CappingType::Percentile, value),
    };
    pb::Metric {
        name: format!("projects/{project}/metrics/{}", stored.key),
        display_name: definition.display_name.clone(),
        description: definition.description.clone(),
        r#type: match definition.kind {
            MetricKind::Binomial => pb::MetricType::Binomial,
            MetricKind::Mean => pb::MetricType::Mean,
            MetricKind::Ratio => pb::MetricType::Ratio,
        } as i32,
        event: definition.event.clone(),
        numerator: definition.numerator.clone(),
        denominator: definition.denominator.clone(),
        window_hours: i32::try_from(definition.window_hours).unwrap_or(i32::MAX),
        capping: (capping_type != pb::CappingType::Unspecified).then_some(pb::Capping {
            r#type: capping_type as i32,
            value: capping_value,
        }),
        inverse: definition.inverse,
        cuped: definition.cuped_lookback_days.map(|days| pb::Cuped {
            enabled: true,
            lookback_days: i32::try_from(days).unwrap_or(i32::MAX),
        }),
        version: stored.version,
        etag: stored.version.to_string(),
        create_time: timestamp(stored.created_ms),
        update_time: timestamp(stored.updated_ms),
    }
}

pub fn spec_from(experiment: pb::Experiment) -> Result<ExperimentSpec, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let analysis = analysis_from(experiment.analysis.unwrap_or_default(), &mut violations);
    let layers = super::layers::ranges_from(experiment.layers, &mut violations);
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(ExperimentSpec {
        display_name: experiment.display_name,
        hypothesis: experiment.hypothesis,
        owner: experiment.owner,
        flag: experiment.flag,
        environments: experiment.environments,
        arms: experiment
            .arms
            .into_iter()
            .map(|arm| Arm {
                variant: arm.variant,
                weight: arm.weight,
            })
            .collect(),
        coverage: if experiment.coverage == 0.0 {
            1.0
        } else {
            experiment.coverage
        },
        targeting: experiment
            .targeting
            .as_ref()
            .map(|rule| Value::Object(from_proto_struct(rule))),
        segment: Some(experiment.segment).filter(|segment| !segment.is_empty()),
        bucketing_attribute: experiment.bucketing_attribute,
        seed: experiment.seed,
        primary_metrics: experiment.primary_metrics,
        secondary_metrics: experiment.secondary_metrics,
        guardrail_metrics: experiment.guardrail_metrics,
        notification_webhook: experiment.notification_webhook,
        layers,
        dimensions: experiment.dimensions,
        analysis,
    })
}

fn analysis_from(analysis: pb::Analysis, violations: &mut Vec<FieldViolation>) -> Analysis {
    let defaults = Analysis::default();
    let engine = match pb::StatsEngine::try_from(analysis.engine) {
        Ok(pb::StatsEngine::Unspecified | pb::StatsEngine::Frequentist) => Engine::Frequentist,
        Ok(pb::StatsEngine::Bayesian) => Engine::Bayesian,
        Err(_) => {
            violations.push(unknown("experiment.analysis.engine", analysis.engine));
            defaults.engine
        }
    };
    let difference = match pb::DifferenceType::try_from(analysis.difference) {
        Ok(pb::DifferenceType::Unspecified | pb::DifferenceType::Relative) => Difference::Relative,
        Ok(pb::DifferenceType::Absolute) => Difference::Absolute,
        Err(_) => {
            violations.push(unknown("experiment.analysis.difference", analysis.difference));
            defaults.difference
        }
    };
    let multiple_testing = match pb::MultipleTesting::try_from(analysis.multiple_testing) {
        Ok(pb::MultipleTesting::Unspecified | pb::MultipleTesting::Holm) => MultipleTesting::Holm,
        Ok(pb::MultipleTesting::BenjaminiHochberg) => MultipleTesting::BenjaminiHochberg,
        Ok(pb::MultipleTesting::None) => MultipleTesting::None,
        Err(_) => {
            violations.push(unknown(
                "experiment.analysis.multiple_testing",
                analysis.multiple_testing,
            ));
            defaults.multiple_testing
        }
    };
    Analysis {
        engine,
        sequential: analysis.sequential,
        sequential_tuning: if analysis.sequential_tuning == 0.0 {
            defaults.sequential_tuning
        } else {
            analysis.sequential_tuning
        },
        alpha: if analysis.alpha == 0.0 {
            defaults.alpha
        } else {
            analysis.alpha
        },
        difference,
        multiple_testing,
    }
}

fn analysis_to(analysis: &Analysis) -> pb::Analysis {
    pb::Analysis {
        engine: match analysis.engine {
            Engine::Frequentist => pb::StatsEngine::Frequentist,
            Engine::Bayesian => pb::StatsEngine::Bayesian,
        } as i32,
        sequential: analysis.sequential,
        sequential_tuning: analysis.sequential_tuning,
        alpha: analysis.alpha,
        difference: match analysis.difference {
            Difference::Relative => pb::DifferenceType::Relative,
            Difference::Absolute => pb::DifferenceType::Absolute,
        } as i32,
        multiple_testing: match analysis.multiple_testing {
            MultipleTesting::Holm => pb::MultipleTesting::Holm,
            MultipleTesting::BenjaminiHochberg => pb::MultipleTesting::BenjaminiHochberg,
            MultipleTesting::None => pb::MultipleTesting::None,
        } as i32,
    }
}

pub fn state_from(value: i32) -> Result<Option<State>, FieldViolation> {
    match pb::ExperimentState::try_from(value) {
        Ok(pb::ExperimentState::Unspecified) => Ok(None),
        Ok(pb::ExperimentState::Draft) => Ok(Some(State::Draft)),
        Ok(pb::ExperimentState::Running) => Ok(Some(State::Running)),
        Ok(pb::ExperimentState::Stopped) => Ok(Some(State::Stopped)),
        Ok(pb::ExperimentState::Archived) => Ok(Some(State::Archived)),
        Err(_) => Err(unknown("state", value)),
    }
}

fn state_to(state: State) -> pb::ExperimentState {
    match state {
        State::Draft => pb::ExperimentState::Draft,
        State::Running => pb::ExperimentState::Running,
        State::Stopped => pb::ExperimentState::Stopped,
        State::Archived => pb::ExperimentState::Archived,
    }
}

pub fn decision_from(decision: Option<pb::Decision>) -> Result<Decision, FieldViolation> {
    let decision = decision.unwrap_or_default();
    let kind = match pb::DecisionType::try_from(decision.r#type) {
        Ok(pb::DecisionType::Ship) => DecisionKind::Ship,
        Ok(pb::DecisionType::RollBack) => DecisionKind::RollBack,
        Ok(pb::DecisionType::NoDecision) => DecisionKind::NoDecision,
        Ok(pb::DecisionType::Unspecified) => {
            return Err(FieldViolation::new(
                "decision.type",
                "say what was decided: DECISION_TYPE_SHIP (with a variant), _ROLL_BACK or _NO_DECISION",
            ));
        }
        Err(_) => return Err(unknown("decision.type", decision.r#type)),
    };
    if kind == DecisionKind::Ship && decision.variant.is_empty() {
        return Err(FieldViolation::new("decision.variant", "the variant to ship"));
    }
    if decision.reason.len() > 4_000 {
        return Err(FieldViolation::new("decision.reason", "at most 4000 bytes"));
    }
    Ok(Decision {
        kind,
        variant: decision.variant,
        reason: decision.reason,
        actor: String::new(),
        decided_ms: 0,
    })
}

fn decision_to(decision: &Decision) -> pb::Decision {
    pb::Decision {
        r#type: match decision.kind {
            DecisionKind::Ship => pb::DecisionType::Ship,
            DecisionKind::RollBack => pb::DecisionType::RollBack,
            DecisionKind::NoDecision => pb::DecisionType::NoDecision,
        } as i32,
        variant: decision.variant.clone(),
        reason: decision.reason.clone(),
        actor: decision.actor.clone(),
        decide_time: timestamp(decision.decided_ms),
    }
}

fn arm_to(arm: &Arm) -> pb::Arm {
    pb::Arm {
        variant: arm.variant.clone(),
        weight: arm.weight,
    }
}

fn phase_to(phase: &Phase) -> pb::Phase {
    pb::Phase {
        number: i32::try_from(phase.number).unwrap_or(i32::MAX),
        start_time: timestamp(phase.start_ms),
        end_time: phase.end_ms.and_then(timestamp),
        coverage: phase.coverage,
        arms: phase.arms.iter().map(arm_to).collect(),
        reason: phase.reason.clone(),
        reassigned: phase.reassigned,
    }
}

pub fn experiment_to(project: &str, stored: &StoredExperiment) -> pb::Experiment {
    let spec = &stored.definition.spec;
    let lifecycle = &stored.definition.lifecycle;
    pb::Experiment {
        name: format!("projects/{project}/experiments/{}", stored.key),
        display_name: spec.display_name.clone(),
        hypothesis: spec.hypothesis.clone(),
        owner: spec.owner.clone(),
        flag: spec.flag.clone(),
        environments: spec.environments.clone(),
        arms: spec.arms.iter().map(arm_to).collect(),
        coverage: spec.coverage,
        targeting: spec.targeting.as_ref().and_then(Value::as_object).map(to_proto_struct),
        segment: spec.segment.clone().unwrap_or_default(),
        bucketing_attribute: spec.bucketing_attribute.clone(),
        seed: spec.seed.clone(),
        primary_metrics: spec.primary_metrics.clone(),
        secondary_metrics: spec.secondary_metrics.clone(),
        guardrail_metrics: spec.guardrail_metrics.clone(),
        notification_webhook: spec.notification_webhook.clone(),
        dimensions: spec.dimensions.clone(),
        layers: spec
            .layers
            .iter()
            .map(|range| super::layers::range_to(range, ""))
            .collect(),
        holdouts: lifecycle
            .exclusions
            .holdouts
            .iter()
            .map(|holdout| format!("projects/{project}/holdouts/{}", holdout.holdout))
            .collect(),
        analysis: Some(analysis_to(&spec.analysis)),
        state: state_to(lifecycle.state) as i32,
        phases: lifecycle.phases.iter().map(phase_to).collect(),
        decision: lifecycle.decision.as_ref().map(decision_to),
        version: stored.version,
        etag: stored.version.to_string(),
        create_time: timestamp(stored.created_ms),
        update_time: timestamp(stored.updated_ms),
    }
}

pub fn version_to(project: &str, key: &str, version: &ExperimentVersion) -> pb::ExperimentVersion {
    let stored = StoredExperiment {
        key: key.to_owned(),
        definition: version.definition.clone(),
        version: version.version,
        created_ms: version.created_ms,
        updated_ms: version.created_ms,
    };
    pb::ExperimentVersion {
        version: version.version,
        action: version.action.clone(),
        author: version.author.clone(),
        message: version.message.clone(),
        create_time: timestamp(version.created_ms),
        experiment: Some(experiment_to(project, &stored)),
    }
}

/// An etag as this service issues it (the version), or `None` when empty.
pub fn etag_from(field: &str, etag: &str) -> Result<Option<i64>, FieldViolation> {
    if etag.is_empty() {
        return Ok(None);
    }
    etag.trim_matches('"')
        .parse::<i64>()
        .ok()
        .filter(|version| *version > 0)
        .map(Some)
        .ok_or_else(|| FieldViolation::new(field, "not an etag this service issued"))
}
