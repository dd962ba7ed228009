//! The experiment's life: draft → running → stopped (with a decision) → archived, and what
//! may change in each state. Pure functions from the current definition to the next, so the
//! rules are tested without storage.
//!
//! Phases keep assignments honest: a running experiment's weights never change silently.
//! Changing them (or lowering coverage) closes the phase and opens a new one; by default units
//! already exposed keep their arms, and re-randomising is the explicit `reassign`. Raising
//! coverage only lets new units in, so it stays in the phase.

use super::model::{Decision, DecisionKind, ExperimentDefinition, ExperimentSpec, Lifecycle, Phase, State};

/// Why a transition or change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("the experiment is {0}; {1}")]
    WrongState(&'static str, &'static str),
    #[error("{field} cannot change once the experiment has run ({why})")]
    Frozen { field: &'static str, why: &'static str },
    #[error("the decision ships `{0}`, which is not one of the experiment's arms")]
    UnknownVariant(String),
}

/// A new draft.
pub fn draft(spec: ExperimentSpec) -> ExperimentDefinition {
    ExperimentDefinition {
        spec,
        lifecycle: Lifecycle {
            state: State::Draft,
            phases: Vec::new(),
            decision: None,
            original_targeting: Default::default(),
            exclusions: Default::default(),
        },
    }
}

/// draft or stopped → running, opening a phase with the current coverage and weights.
pub fn start(
    current: &ExperimentDefinition,
    now_ms: i64,
    reason: &str,
) -> Result<ExperimentDefinition, LifecycleError> {
    match current.lifecycle.state {
        State::Draft | State::Stopped => {}
        State::Running => return Err(LifecycleError::WrongState("running", "it has started already")),
        State::Archived => {
            return Err(LifecycleError::WrongState(
                "archived",
                "archived experiments are read-only",
            ));
        }
    }
    let mut next = current.clone();
    let restarted = current.lifecycle.state == State::Stopped;
    open_phase(
        &mut next,
        now_ms,
        if restarted { "restarted" } else { "started" },
        reason,
        false,
    );
    next.lifecycle.state = State::Running;
    next.lifecycle.decision = None;
    Ok(next)
}

/// running → stopped, closing the phase and recording the decision.
pub fn stop(
    current: &ExperimentDefinition,
    decision: Decision,
    now_ms: i64,
) -> Result<ExperimentDefinition, LifecycleError> {
    if current.lifecycle.state != State::Running {
        return Err(LifecycleError::WrongState(
            current.lifecycle.state.as_str(),
            "only a running experiment stops",
        ));
    }
    if decision.kind == DecisionKind::Ship && !current.spec.arms.iter().any(|arm| arm.variant == decision.variant) {
        return Err(LifecycleError::UnknownVariant(decision.variant));
    }
    let mut next = current.clone();
    close_phase(&mut next, now_ms);
    next.lifecycle.state = State::Stopped;
    next.lifecycle.decision = Some(decision);
    Ok(next)
}

/// draft or stopped → archived.
pub fn archive(current: &ExperimentDefinition) -> Result<ExperimentDefinition, LifecycleError> {
    match current.lifecycle.state {
        State::Draft | State::Stopped => {
            let mut next = current.clone();
            next.lifecycle.state = State::Archived;
            Ok(next)
        }
        State::Running => Err(LifecycleError::WrongState("running", "stop it before archiving")),
        State::Archived => Err(LifecycleError::WrongState("archived", "it is archived already")),
    }
}

/// Applies a new spec. Drafts change freely; once an experiment has run, what decides a
/// unit's arm stays fixed, and a running experiment opens a new phase when its weights change
/// or its coverage drops.
pub fn update(
    current: &ExperimentDefinition,
    spec: ExperimentSpec,
    reassign: bool,
    now_ms: i64,
    reason: &str,
) -> Result<ExperimentDefinition, LifecycleError> {
    let state = current.lifecycle.state;
    if state == State::Archived {
        return Err(LifecycleError::WrongState(
            "archived",
            "archived experiments are read-only",
        ));
    }
    let mut next = current.clone();
    let old = &current.spec;
    if state != State::Draft {
        check_frozen(old, &spec)?;
    }
    let weights_changed = old.arms.iter().zip(&spec.arms).any(|(a, b)| a.weight != b.weight);
    let coverage_dropped = spec.coverage < old.coverage;
    if state == State::Running && weights_changed && !reassign && spec.coverage >= 1.0 && old.coverage >= 1.0 {
        return Err(LifecycleError::WrongState(
            "at full coverage",
            "new weights would reach nobody, since every covered unit keeps its arm; re-randomise (reassign) to apply them",
        ));
    }
    next.spec = spec;
    if state != State::Running {
        return Ok(next);
    }
    if weights_changed || coverage_dropped || reassign {
        let why = if weights_changed {
            "weights changed"
        } else if coverage_dropped {
            "coverage lowered"
        } else {
            "re-randomised"
        };
        close_phase(&mut next, now_ms);
        open_phase(&mut next, now_ms, why, reason, reassign);
    } else if let Some(phase) = next.lifecycle.phases.last_mut() {
        // Raising coverage lets new units in and moves nobody.
        phase.coverage = next.spec.coverage;
    }
    Ok(next)
}

/// What decides a unit's arm, fixed once the experiment has run.
fn check_frozen(old: &ExperimentSpec, new: &ExperimentSpec) -> Result<(), LifecycleError> {
    let frozen = |field, why| Err(LifecycleError::Frozen { field, why });
    if old.flag != new.flag {
        return frozen("experiment.flag", "its exposures belong to this flag");
    }
    let variants = |spec: &ExperimentSpec| spec.arms.iter().map(|arm| arm.variant.clone()).collect::<Vec<_>>();
    if variants(old) != variants(new) {
        return frozen(
            "experiment.arms",
            "arms can change weight, not variant or order; start a new experiment",
        );
    }
    if old.bucketing_attribute != new.bucketing_attribute || old.seed != new.seed {
        return frozen("experiment.seed", "a different hash would move every unit");
    }
    if old.layers != new.layers {
        return frozen("experiment.layers", "another range would move units in or out");
    }
    Ok(())
}

fn open_phase(next: &mut ExperimentDefinition, now_ms: i64, why: &str, reason: &str, reassigned: bool) {
    let number = next.lifecycle.phases.last().map_or(1, |phase| phase.number + 1);
    let reason = if reason.is_empty() {
        why.to_owned()
    } else {
        format!("{why}: {reason}")
    };
    next.lifecycle.phases.push(Phase {
        number,
        start_ms: now_ms,
        end_ms: None,
        coverage: next.spec.coverage,
        arms: next.spec.arms.clone(),
        reason,
        reassigned,
    });
}

fn close_phase(next: &mut ExperimentDefinition, now_ms: i64) {
    if let Some(phase) = next.lifecycle.phases.last_mut()
        && phase.end_ms.is_none()
    {
        phase.end_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biz::model::{Analysis, Arm};

    fn spec() -> ExperimentSpec {
        ExperimentSpec {
            display_name: "Checkout button".into(),
            hypothesis: "green converts better".into(),
            owner: "growth".into(),
            flag: "checkout-button".into(),
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
            coverage: 0.5,
            targeting: None,
            segment: None,
            bucketing_attribute: "targetingKey".into(),
            seed: "checkout".into(),
            primary_metrics: vec!["purchase".into()],
            secondary_metrics: vec![],
            guardrail_metrics: vec![],
            analysis: Analysis::default(),
            notification_webhook: String::new(),
            layers: vec![],
            dimensions: vec![],
        }
    }

    fn decision(kind: DecisionKind, variant: &str) -> Decision {
        Decision {
            kind,
            variant: variant.into(),
            reason: String::new(),
            actor: "ana".into(),
            decided_ms: 3,
        }
    }

    #[test]
    fn a_draft_runs_stops_with_a_decision_and_archives() {
        let running = start(&draft(spec()), 1, "").unwrap();
        assert_eq!(running.lifecycle.state, State::Running);
        assert_eq!(running.lifecycle.phases.len(), 1);
        assert!(archive(&running).is_err(), "running experiments stop first");
        let stopped = stop(&running, decision(DecisionKind::Ship, "green"), 2).unwrap();
        assert_eq!(stopped.lifecycle.phases[0].end_ms, Some(2));
        assert_eq!(
            stopped.lifecycle.decision.as_ref().map(|d| d.kind),
            Some(DecisionKind::Ship)
        );
        let archived = archive(&stopped).unwrap();
        assert!(update(&archived, spec(), false, 4, "").is_err());
        assert!(start(&archived, 4, "").is_err());
    }

    #[test]
    fn shipping_a_variant_that_is_not_an_arm_is_refused() {
        let running = start(&draft(spec()), 1, "").unwrap();
        assert_eq!(
            stop(&running, decision(DecisionKind::Ship, "red"), 2),
            Err(LifecycleError::UnknownVariant("red".into()))
        );
    }

    #[test]
    fn raising_coverage_keeps_the_phase_and_new_weights_open_one() {
        let running = start(&draft(spec()), 1, "").unwrap();
        let mut wider = spec();
        wider.coverage = 0.8;
        let wider = update(&running, wider, false, 2, "").unwrap();
        assert_eq!(wider.lifecycle.phases.len(), 1);
        assert_eq!(wider.lifecycle.phases[0].coverage, 0.8);

        let mut reweighted = wider.spec.clone();
        reweighted.arms[1].weight = 3.0;
        let next = update(&wider, reweighted, false, 3, "more traffic to green").unwrap();
        let phases = &next.lifecycle.phases;
        assert_eq!(phases.len(), 2);
        assert_eq!(phases[0].end_ms, Some(3));
        assert!(!phases[1].reassigned, "sticky unless asked");
        assert_eq!(phases[1].reason, "weights changed: more traffic to green");
    }

    #[test]
    fn what_decides_the_arm_is_frozen_once_run() {
        let running = start(&draft(spec()), 1, "").unwrap();
        let mut other_flag = spec();
        other_flag.flag = "other".into();
        assert!(matches!(
            update(&running, other_flag, false, 2, ""),
            Err(LifecycleError::Frozen { .. })
        ));
        let mut reseeded = spec();
        reseeded.seed = "new".into();
        assert!(matches!(
            update(&running, reseeded, false, 2, ""),
            Err(LifecycleError::Frozen { .. })
        ));
        let mut swapped = spec();
        swapped.arms.reverse();
        assert!(matches!(
            update(&running, swapped, false, 2, ""),
            Err(LifecycleError::Frozen { .. })
        ));
        // A draft changes freely.
        let mut free = spec();
        free.flag = "other".into();
        assert!(update(&draft(spec()), free, false, 2, "").is_ok());
    }
}
