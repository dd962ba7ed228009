//! Assignment as plain flagd JSON Logic, written into the experiment's flag so that every
//! flagd provider (RPC, in-process, OFREP) assigns exactly as [`assign`] does, with no call to
//! experiment-service: the rule is evaluated by flag-engine, the one implementation of flagd's
//! bucketing.
//!
//! Two independent hashes of the unit (the bucketing attribute, salted with the experiment's
//! seed) decide: one places it in 10,000 coverage buckets, the other picks its arm. Coverage is
//! cut into slices, one per stretch of coverage a sticky phase added, each with the weights of
//! the phase that added it:
//!
//! - raising coverage only appends buckets, so nobody already in moves;
//! - a sticky weight change keeps every bucket already covered on its old weights (every unit
//!   that could have been exposed keeps its arm) and gives the new weights to the coverage
//!   added from then on;
//! - re-randomising starts a new epoch: one slice, new weights, and a new arm hash salt.
//!
//! Units without the bucketing attribute, or outside the targeting rule or segment, fall
//! through to the flag's own targeting, as do units outside coverage.

use flag_engine::{Context, FlagSet, Limits, Scope};
use serde_json::{Value, json};

use super::{
    layers::Exclusions,
    model::{Decision, DecisionKind, ExperimentSpec, Phase},
};

/// Coverage buckets: coverage is kept to 1/10,000.
pub const BUCKETS: i64 = 10_000;
/// The fractional bucket name for units outside coverage.
const OUT: &str = "out";

/// One stretch of coverage buckets and the arm weights (in 10,000ths) units there get.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub from: i64,
    pub to: i64,
    pub weights: Vec<(String, i64)>,
}

/// The current allocation: the arm hash's salt (the epoch) and the coverage slices.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub epoch: u32,
    pub slices: Vec<Slice>,
}

fn buckets_of(coverage: f64) -> i64 {
    ((coverage * BUCKETS as f64).round() as i64).clamp(0, BUCKETS)
}

/// Integer weights summing to 10,000 (the last arm takes the rounding).
fn weights_of(phase: &Phase) -> Vec<(String, i64)> {
    let total: f64 = phase.arms.iter().map(|arm| arm.weight).sum();
    let mut out: Vec<(String, i64)> = phase
        .arms
        .iter()
        .map(|arm| {
            (
                arm.variant.clone(),
                ((arm.weight / total) * BUCKETS as f64).floor() as i64,
            )
        })
        .collect();
    let assigned: i64 = out.iter().map(|(_, weight)| weight).sum();
    if let Some(last) = out.last_mut() {
        last.1 += BUCKETS - assigned;
    }
    out
}

/// The allocation the phases so far add up to.
pub fn allocation(phases: &[Phase]) -> Allocation {
    let start = phases.iter().rposition(|phase| phase.reassigned).unwrap_or(0);
    let epoch = phases.get(start).map_or(1, |phase| phase.number);
    let mut slices: Vec<Slice> = Vec::new();
    let mut covered = 0;
    for phase in &phases[start..] {
        let upper = buckets_of(phase.coverage);
        if upper > covered {
            slices.push(Slice {
                from: covered,
                to: upper,
                weights: weights_of(phase),
            });
        } else {
            // Coverage lowered: everything above the new bound leaves.
            slices.retain(|slice| slice.from < upper);
            if let Some(last) = slices.last_mut() {
                last.to = last.to.min(upper);
            }
        }
        covered = upper;
    }
    Allocation { epoch, slices }
}

/// `seed/purpose/` joined with the unit's bucketing attribute.
fn hash_key(spec: &ExperimentSpec, purpose: &str) -> Value {
    json!({"cat": [format!("{}/{purpose}/", spec.seed), {"var": spec.bucketing_attribute}]})
}

/// Who may enter: has the bucketing attribute, passes the rule or segment, is outside every
/// holdout and (while the experiment runs, `layers`) inside its range of every layer.
fn eligibility(spec: &ExperimentSpec, exclusions: &Exclusions, layers: bool) -> Value {
    let mut conditions = vec![json!({"!!": [{"var": spec.bucketing_attribute}]})];
    if let Some(rule) = &spec.targeting {
        conditions.push(rule.clone());
    }
    if let Some(segment) = &spec.segment {
        conditions.push(json!({"$ref": segment}));
    }
    conditions.extend(exclusions.conditions(layers));
    json!({"and": conditions})
}

/// The rule of a running experiment, falling back to the flag's own targeting (`original`).
pub fn running_rule(
    spec: &ExperimentSpec,
    phases: &[Phase],
    exclusions: &Exclusions,
    original: Option<&Value>,
) -> Value {
    let fallback = original.cloned().unwrap_or(Value::Null);
    let allocation = allocation(phases);
    if allocation.slices.is_empty() {
        return fallback;
    }
    let mut buckets: Vec<Value> = allocation
        .slices
        .iter()
        .enumerate()
        .map(|(index, slice)| json!([format!("s{index}"), slice.to - slice.from]))
        .collect();
    let covered = allocation.slices.last().map_or(0, |slice| slice.to);
    buckets.push(json!([OUT, BUCKETS - covered]));
    let mut coverage = vec![hash_key(spec, "coverage")];
    coverage.extend(buckets);
    let coverage = json!({"fractional": coverage});
    let arms_key = hash_key(spec, &format!("arms/{}", allocation.epoch));
    let mut branches = Vec::new();
    for (index, slice) in allocation.slices.iter().enumerate() {
        let mut arms = vec![arms_key.clone()];
        arms.extend(slice.weights.iter().map(|(variant, weight)| json!([variant, weight])));
        branches.push(json!({"==": [coverage.clone(), format!("s{index}")]}));
        branches.push(json!({"fractional": arms}));
    }
    branches.push(fallback.clone());
    json!({"if": [eligibility(spec, exclusions, true), {"if": branches}, fallback]})
}

/// The rule after a decision: the shipped variant (or the control, on roll back) for every
/// eligible unit, in or out of its layer ranges but never in a holdout; with no decision, the
/// flag's own targeting again.
pub fn decided_rule(
    spec: &ExperimentSpec,
    exclusions: &Exclusions,
    decision: &Decision,
    original: Option<&Value>,
) -> Option<Value> {
    let variant = match decision.kind {
        DecisionKind::Ship => decision.variant.clone(),
        DecisionKind::RollBack => spec.arms.first().map(|arm| arm.variant.clone())?,
        DecisionKind::NoDecision => return original.cloned(),
    };
    let fallback = original.cloned().unwrap_or(Value::Null);
    Some(json!({"if": [eligibility(spec, exclusions, false), variant, fallback]}))
}

/// The arm a unit gets: the rule above evaluated by flag-engine on a flag whose variants are
/// the arms. `None` when the unit is not in the experiment (it gets the flag's own targeting).
pub fn assign(spec: &ExperimentSpec, phases: &[Phase], exclusions: &Exclusions, context: &Context) -> Option<String> {
    Assigner::new(spec, phases, exclusions)?.assign(context)
}

/// The experiment's running rule compiled once, for assigning many units.
pub struct Assigner {
    flags: FlagSet,
}

impl Assigner {
    pub fn new(spec: &ExperimentSpec, phases: &[Phase], exclusions: &Exclusions) -> Option<Self> {
        let rule = running_rule(spec, phases, exclusions, None);
        let variants: serde_json::Map<String, Value> = spec
            .arms
            .iter()
            .map(|arm| (arm.variant.clone(), Value::String(arm.variant.clone())))
            .chain([(OUT.to_owned(), Value::String(OUT.to_owned()))])
            .collect();
        let document = json!({"flags": {"experiment": {
            "state": "ENABLED", "variants": variants, "defaultVariant": OUT, "targeting": rule}}});
        let flags = FlagSet::from_document(&document, &Limits::default()).ok()?;
        Some(Self { flags })
    }

    /// The unit's arm, `None` outside the experiment.
    pub fn assign(&self, context: &Context) -> Option<String> {
        let resolution = self.flags.evaluate("experiment", &Scope { context, timestamp: 0 });
        resolution.variant.filter(|variant| *variant != OUT).map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biz::model::{Analysis, Arm};

    fn spec() -> ExperimentSpec {
        ExperimentSpec {
            display_name: String::new(),
            hypothesis: String::new(),
            owner: String::new(),
            flag: "button".into(),
            environments: vec!["prod".into()],
            arms: vec![
                Arm {
                    variant: "blue".into(),
                    weight: 1.0,
                },
                Arm {
                    variant: "green".into(),
                    weight: 1.0,
                },
            ],
            coverage: 1.0,
            targeting: None,
            segment: None,
            bucketing_attribute: "targetingKey".into(),
            seed: "button-test".into(),
            primary_metrics: vec![],
            secondary_metrics: vec![],
            guardrail_metrics: vec![],
            analysis: Analysis::default(),
            notification_webhook: String::new(),
            layers: vec![],
            dimensions: vec![],
        }
    }

    fn phase(number: u32, coverage: f64, weights: [f64; 2], reassigned: bool) -> Phase {
        Phase {
            number,
            start_ms: 0,
            end_ms: None,
            coverage,
            arms: vec![
                Arm {
                    variant: "blue".into(),
                    weight: weights[0],
                },
                Arm {
                    variant: "green".into(),
                    weight: weights[1],
                },
            ],
            reason: String::new(),
            reassigned,
        }
    }

    fn arms_of(phases: &[Phase], units: usize) -> Vec<Option<String>> {
        let spec = spec();
        (0..units)
            .map(|i| {
                let mut context = Context::new();
                context.insert("targetingKey", Value::String(format!("user-{i}")));
                assign(&spec, phases, &Exclusions::default(), &context)
            })
            .collect()
    }

    #[test]
    fn coverage_and_weights_are_honoured() {
        let arms = arms_of(&[phase(1, 0.5, [1.0, 3.0], false)], 10_000);
        let count = |variant: &str| arms.iter().filter(|arm| arm.as_deref() == Some(variant)).count() as f64;
        assert!(
            (count("blue") + count("green") - 5_000.0).abs() < 250.0,
            "about half enter"
        );
        assert!(
            (count("green") / (count("blue") + count("green")) - 0.75).abs() < 0.03,
            "3:1"
        );
    }

    #[test]
    fn raising_coverage_moves_nobody_already_in() {
        let before = arms_of(&[phase(1, 0.3, [1.0, 1.0], false)], 5_000);
        let after = arms_of(&[phase(1, 0.8, [1.0, 1.0], false)], 5_000);
        for (was, is) in before.iter().zip(&after) {
            if was.is_some() {
                assert_eq!(was, is);
            }
        }
        assert!(after.iter().filter(|arm| arm.is_some()).count() > before.iter().filter(|arm| arm.is_some()).count());
    }

    #[test]
    fn a_sticky_weight_change_keeps_every_covered_unit_and_reassigning_moves_some() {
        let first = [phase(1, 0.5, [1.0, 1.0], false)];
        let before = arms_of(&first, 5_000);
        // New weights, then more coverage: old buckets keep 50/50, new ones get 1:9.
        let sticky = [
            phase(1, 0.5, [1.0, 1.0], false),
            phase(2, 0.5, [1.0, 9.0], false),
            phase(3, 1.0, [1.0, 9.0], false),
        ];
        let after = arms_of(&sticky, 5_000);
        let mut newcomers_green = 0;
        let mut newcomers = 0;
        for (was, is) in before.iter().zip(&after) {
            match was {
                Some(_) => assert_eq!(was, is, "an exposed unit never moves"),
                None => {
                    newcomers += 1;
                    newcomers_green += usize::from(is.as_deref() == Some("green"));
                }
            }
        }
        assert!(
            newcomers_green as f64 / newcomers as f64 > 0.85,
            "newcomers get the new weights"
        );
        let reassigned = [phase(1, 0.5, [1.0, 1.0], false), phase(2, 0.5, [1.0, 1.0], true)];
        let moved = arms_of(&reassigned, 5_000)
            .iter()
            .zip(&before)
            .filter(|(a, b)| a != b)
            .count();
        assert!(moved > 1_000, "re-randomising is a new draw ({moved} moved)");
    }

    #[test]
    fn units_without_the_attribute_or_outside_the_rule_fall_through() {
        let mut spec = spec();
        spec.targeting = Some(json!({"==": [{"var": "country"}, "BD"]}));
        let phases = [phase(1, 1.0, [1.0, 1.0], false)];
        let mut context = Context::new();
        context.insert("country", json!("BD"));
        assert_eq!(
            assign(&spec, &phases, &Exclusions::default(), &context),
            None,
            "no targeting key"
        );
        context.insert("targetingKey", json!("user-1"));
        assert!(assign(&spec, &phases, &Exclusions::default(), &context).is_some());
        context.insert("country", json!("IN"));
        assert_eq!(assign(&spec, &phases, &Exclusions::default(), &context), None);
    }
}
