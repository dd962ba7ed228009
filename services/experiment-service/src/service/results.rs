//! Results as protobuf.

use switchyard_api::experiments::v1 as pb;
use switchyard_platform::{clock::now_ms, proto_json::timestamp};

use crate::biz::{
    dimensions::Slice,
    model::MetricKind,
    results::{ArmResult, Breakdown, Comparison, MetricResult, Results, SliceResult},
};

fn comparison_to(comparison: &Comparison) -> pb::Comparison {
    pb::Comparison {
        effect: comparison.effect,
        ci_lower: comparison.interval.0,
        ci_upper: comparison.interval.1,
        p_value: comparison.p_value.unwrap_or_default(),
        adjusted_p_value: comparison.adjusted_p_value.unwrap_or_default(),
        chance_to_win: comparison.chance_to_win.unwrap_or_default(),
        risk_control: comparison.risk.map_or(0.0, |risk| risk.0),
        risk_treatment: comparison.risk.map_or(0.0, |risk| risk.1),
        significant: comparison.significant,
        undefined_reason: comparison.undefined.clone().unwrap_or_default(),
    }
}

fn arm_to(arm: &ArmResult) -> pb::ArmResult {
    pb::ArmResult {
        variant: arm.variant.clone(),
        units: arm.units,
        mean: arm.mean,
        comparison: arm.comparison.as_ref().map(comparison_to),
    }
}

fn metric_to(metric: &MetricResult) -> pb::MetricResult {
    pb::MetricResult {
        metric: metric.metric.clone(),
        role: metric.role.as_str().to_owned(),
        r#type: match metric.kind {
            MetricKind::Binomial => pb::MetricType::Binomial,
            MetricKind::Mean => pb::MetricType::Mean,
            MetricKind::Ratio => pb::MetricType::Ratio,
        } as i32,
        inverse: metric.inverse,
        cuped: metric.cuped,
        arms: metric.arms.iter().map(arm_to).collect(),
    }
}

/// Units per arm, as arms without figures.
fn units_to(units: &[(String, i64)]) -> Vec<pb::ArmResult> {
    units
        .iter()
        .map(|(variant, units)| pb::ArmResult {
            variant: variant.clone(),
            units: *units,
            mean: 0.0,
            comparison: None,
        })
        .collect()
}

fn slice_to(slice: &SliceResult) -> pb::SliceResult {
    let (value, kind) = match &slice.slice {
        Slice::Value(value) => (value.clone(), pb::SliceKind::Value),
        Slice::Missing => (String::new(), pb::SliceKind::Missing),
        Slice::Other => (String::new(), pb::SliceKind::Other),
    };
    pb::SliceResult {
        value,
        kind: kind as i32,
        arms: units_to(&slice.units),
        metrics: slice.metrics.iter().map(metric_to).collect(),
        srm_p_value: slice.srm_p_value,
    }
}

fn breakdown_to(breakdown: &Breakdown) -> pb::Breakdown {
    pb::Breakdown {
        dimension: breakdown.dimension.clone(),
        slices: breakdown.slices.iter().map(slice_to).collect(),
    }
}

pub fn results_to(project: &str, key: &str, results: &Results) -> pb::Results {
    let health = &results.health;
    pb::Results {
        experiment: format!("projects/{project}/experiments/{key}"),
        phase: i32::try_from(results.phase).unwrap_or(i32::MAX),
        arms: units_to(&results.units),
        metrics: results.metrics.iter().map(metric_to).collect(),
        health: Some(pb::HealthChecks {
            srm_p_value: health.srm_p_value,
            srm_detected: health.srm_detected,
            multiple_exposures: health.multiple_exposures,
            too_few_units: health.too_few_units,
            guardrails_failing: health.guardrails_failing.clone(),
        }),
        compute_time: timestamp(now_ms()),
        rebuild: results.rebuild.map(|(units_done, units_total)| pb::RebuildProgress {
            units_done,
            units_total,
        }),
        pending_batches: results.pending_batches,
        breakdown: results.breakdown.as_ref().map(breakdown_to),
    }
}
