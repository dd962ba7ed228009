//! Layers and holdouts: who an experiment may not touch, as plain flagd JSON Logic.
//!
//! A layer hashes units (its seed and bucketing attribute) into 10,000 buckets; experiments in
//! it hold disjoint ranges, and a unit enters an experiment only inside the experiment's range
//! of every layer it is in — so two experiments sharing a layer never share a unit, and an
//! experiment in several layers is exclusive with the experiments of each. A holdout hashes
//! units the same way and keeps its share out of every experiment started in its scope, and
//! out of what a decision then ships.
//!
//! What an experiment excludes is resolved when it first starts and kept with it
//! ([`Exclusions`]), so the rule in its flag, `Assign` and the exposure check never change
//! under a running experiment, whatever happens to the layers and holdouts later.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchyard_platform::error::FieldViolation;

use super::assignment::BUCKETS;

/// A layer as defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub display_name: String,
    pub description: String,
    pub bucketing_attribute: String,
    pub seed: String,
}

/// A holdout as defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    pub display_name: String,
    pub description: String,
    /// Held-out buckets of 10,000.
    pub buckets: i64,
    pub bucketing_attribute: String,
    pub seed: String,
    /// Empty: every environment.
    pub environments: Vec<String>,
    /// What its own comparison (held-out units against the rest) measures.
    #[serde(default)]
    pub metrics: Vec<String>,
}

impl Holdout {
    /// Whether an experiment running in `environments` is in its scope.
    pub fn covers(&self, environments: &[String]) -> bool {
        self.environments.is_empty() || environments.iter().any(|e| self.environments.contains(e))
    }
}

/// A range of a layer an experiment asks for: [from, to) of its 10,000 buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRange {
    pub layer: String,
    pub from: i64,
    pub to: i64,
}

impl LayerRange {
    pub fn overlaps(&self, other: &LayerRange) -> bool {
        self.layer == other.layer && self.from < other.to && other.from < self.to
    }
}

/// A share as buckets, when it is a whole number of them within `[0, 1]`.
pub fn buckets_of_share(share: f64) -> Option<i64> {
    let buckets = share * BUCKETS as f64;
    let rounded = buckets.round();
    ((0.0..=1.0).contains(&share) && (buckets - rounded).abs() < 1e-6).then_some(rounded as i64)
}

/// Violations of an experiment's layer ranges taken alone.
pub fn range_violations(ranges: &[LayerRange], out: &mut Vec<FieldViolation>) {
    for (index, range) in ranges.iter().enumerate() {
        let field = format!("experiment.layers[{index}]");
        if let Err(violation) = switchyard_platform::names::check_id(&format!("{field}.layer"), &range.layer) {
            out.push(violation);
        }
        if !(0 <= range.from && range.from < range.to && range.to <= BUCKETS) {
            out.push(FieldViolation::new(
                field.clone(),
                "a range 0 ≤ start < end ≤ 1 in steps of 0.0001",
            ));
        }
        if ranges[..index].iter().any(|earlier| earlier.layer == range.layer) {
            out.push(FieldViolation::new(field, "one range per layer"));
        }
    }
}

/// One layer range as the rule needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedRange {
    pub layer: String,
    pub seed: String,
    pub attribute: String,
    pub from: i64,
    pub to: i64,
}

/// One holdout as the rule needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedHoldout {
    pub holdout: String,
    pub seed: String,
    pub attribute: String,
    pub buckets: i64,
}

/// What an experiment leaves alone, fixed when it first started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exclusions {
    pub layers: Vec<ResolvedRange>,
    pub holdouts: Vec<ResolvedHoldout>,
}

/// `[name, weight]` buckets of a fractional split keyed by `seed/purpose/` and the attribute.
fn split(seed: &str, purpose: &str, attribute: &str, buckets: &[(&str, i64)]) -> Value {
    let mut arguments = vec![json!({"cat": [format!("{seed}/{purpose}/"), {"var": attribute}]})];
    arguments.extend(buckets.iter().map(|(name, weight)| json!([name, weight])));
    json!({"fractional": arguments})
}

impl Exclusions {
    /// JSON Logic conditions a unit must pass: inside each layer range (when `layers`) and
    /// outside each holdout.
    pub fn conditions(&self, layers: bool) -> Vec<Value> {
        let mut out = Vec::new();
        if layers {
            for range in &self.layers {
                let buckets = [
                    ("below", range.from),
                    ("in", range.to - range.from),
                    ("above", BUCKETS - range.to),
                ];
                out.push(json!({"==": [split(&range.seed, "layer", &range.attribute, &buckets), "in"]}));
            }
        }
        for holdout in &self.holdouts {
            let buckets = [("held", holdout.buckets), ("rest", BUCKETS - holdout.buckets)];
            out.push(json!({"!=": [split(&holdout.seed, "holdout", &holdout.attribute, &buckets), "held"]}));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_become_whole_buckets_or_nothing() {
        assert_eq!(buckets_of_share(0.25), Some(2_500));
        assert_eq!(buckets_of_share(0.0001), Some(1));
        assert_eq!(buckets_of_share(0.00015), None);
        assert_eq!(buckets_of_share(1.5), None);
        assert_eq!(buckets_of_share(-0.1), None);
    }

    #[test]
    fn ranges_overlap_only_in_the_same_layer() {
        let a = LayerRange {
            layer: "checkout".into(),
            from: 0,
            to: 5_000,
        };
        let b = LayerRange {
            layer: "checkout".into(),
            from: 5_000,
            to: 10_000,
        };
        assert!(!a.overlaps(&b), "adjacent ranges are disjoint");
        assert!(a.overlaps(&LayerRange {
            from: 4_999,
            ..b.clone()
        }));
        assert!(!a.overlaps(&LayerRange {
            layer: "search".into(),
            ..a.clone()
        }));
        let mut out = Vec::new();
        range_violations(&[a.clone(), a], &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
