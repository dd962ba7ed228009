//! A holdout's own long-running comparison: the units it holds out against the units it lets
//! through, on the holdout's metrics, for as long as the holdout exists — the cumulative effect
//! of every experiment (and every decision shipped) in its scope.
//!
//! It is analysed as an experiment of two arms, `holdout` (the control) and `general`, with one
//! phase from the holdout's creation, under the reserved key `$holdout:{key}` (no experiment key
//! can start with `$`), so the aggregator, the kept sums, the rebuilds and the statistics are
//! the experiments' own. Units enter it from flag evaluation only: flag-service reports every
//! unit evaluated on a flag bound to an experiment in the holdout's scope, held out or not, so
//! both arms are seen alike (`LogExposures` callers do not report held-out units, and would
//! bias it). The sequential test is used, since such a comparison is read again and again.

use super::{
    layers::{Holdout, ResolvedHoldout},
    model::{Analysis, Arm, ExperimentDefinition, ExperimentSpec, Lifecycle, Phase, State},
};
use crate::biz::assignment::BUCKETS;

/// The key prefix of holdout comparisons among the experiments' kept rows.
pub const KEY_PREFIX: &str = "$holdout:";
/// The arm of held-out units (the control).
pub const HELD: &str = "holdout";
/// The arm of every other unit.
pub const THROUGH: &str = "general";

/// The analysis key of holdout `key`.
pub fn comparison_key(holdout: &str) -> String {
    format!("{KEY_PREFIX}{holdout}")
}

/// The holdout of an analysis key, if it is one.
pub fn holdout_of(key: &str) -> Option<&str> {
    key.strip_prefix(KEY_PREFIX)
}

/// The arm of the unit whose holdout attribute is `value`.
pub fn arm_of(holdout: &ResolvedHoldout, value: &str) -> &'static str {
    let key = format!("{}/holdout/{value}", holdout.seed);
    let weights = [holdout.buckets as u64, (BUCKETS - holdout.buckets) as u64];
    match flag_engine::bucketing::pick(&key, &weights) {
        Some(0) => HELD,
        _ => THROUGH,
    }
}

/// The comparison as an experiment definition the aggregator and results understand.
pub fn definition(holdout: &Holdout, created_ms: i64) -> ExperimentDefinition {
    let held = holdout.buckets as f64 / BUCKETS as f64;
    let arms = vec![
        Arm {
            variant: HELD.to_owned(),
            weight: held,
        },
        Arm {
            variant: THROUGH.to_owned(),
            weight: 1.0 - held,
        },
    ];
    let spec = ExperimentSpec {
        display_name: holdout.display_name.clone(),
        hypothesis: String::new(),
        owner: String::new(),
        flag: String::new(),
        environments: holdout.environments.clone(),
        arms: arms.clone(),
        coverage: 1.0,
        targeting: None,
        segment: None,
        bucketing_attribute: holdout.bucketing_attribute.clone(),
        seed: holdout.seed.clone(),
        primary_metrics: holdout.metrics.clone(),
        secondary_metrics: Vec::new(),
        guardrail_metrics: Vec::new(),
        analysis: Analysis {
            sequential: true,
            ..Analysis::default()
        },
        notification_webhook: String::new(),
        layers: Vec::new(),
        dimensions: Vec::new(),
    };
    let phase = Phase {
        number: 1,
        start_ms: created_ms,
        end_ms: None,
        coverage: 1.0,
        arms,
        reason: "the holdout was created".to_owned(),
        reassigned: false,
    };
    ExperimentDefinition {
        spec,
        lifecycle: Lifecycle {
            state: State::Running,
            phases: vec![phase],
            decision: None,
            original_targeting: Default::default(),
            exclusions: Default::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_share_is_what_the_rule_holds_out() {
        let holdout = ResolvedHoldout {
            holdout: "global".into(),
            seed: "global".into(),
            attribute: "targetingKey".into(),
            buckets: 1_000,
        };
        let held = (0..20_000)
            .filter(|i| arm_of(&holdout, &format!("u{i}")) == HELD)
            .count();
        assert!((1_800..2_200).contains(&held), "{held} of 20,000 held");
        assert_eq!(holdout_of(&comparison_key("global")), Some("global"));
        assert_eq!(holdout_of("global"), None);
    }
}
