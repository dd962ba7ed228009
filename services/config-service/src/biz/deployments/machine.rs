//! The deployment state machine: pure transitions of a [`Deployment`] at a given wall-clock
//! time. Each returns the events it caused; the caller stores the new state, the events and
//! what clients are served in one transaction, so a transition happens once or not at all.
//!
//! Steps are indexed into `strategy.steps()`; the bake is the virtual step after the last.
//! Times are wall-clock milliseconds stored with the deployment (`due_ms`), so a replica that
//! takes over continues the schedule where it stands instead of restarting a step or a bake.

use super::{
    gates::Outcome,
    model::{Deployment, Event, EventKind, State},
    strategy::{FULL, PlannedStep, percentage_of},
};
use crate::biz::error::{ConfigError, ConfigResult};

/// Who drives scheduled transitions, in event logs.
pub const DRIVER: &str = "driver";

fn steps(deployment: &Deployment) -> Vec<PlannedStep> {
    deployment.strategy.steps()
}

fn baking_step(deployment: &Deployment) -> i64 {
    steps(deployment).len() as i64
}

fn touch(deployment: &mut Deployment, now: i64) {
    deployment.updated_ms = now;
}

/// Starts a step: its share, its hold, a fresh run of passes for every gate.
fn enter_step(deployment: &mut Deployment, index: i64, now: i64, actor: &str, events: &mut Vec<Event>) {
    let plan = steps(deployment);
    let Some(step) = usize::try_from(index).ok().and_then(|index| plan.get(index)).copied() else {
        return enter_bake(deployment, now, actor, events);
    };
    deployment.step = index;
    deployment.step_started_ms = now;
    deployment.reason.clear();
    reset_runs(deployment);
    let grew = step.share != deployment.share;
    deployment.share = step.share;
    match step.hold_ms {
        Some(hold) => {
            deployment.state = State::Deploying;
            deployment.due_ms = Some(now + hold);
            deployment.paused_left_ms = None;
        }
        None => {
            deployment.state = State::Paused;
            deployment.due_ms = None;
            deployment.paused_left_ms = None;
            deployment.reason = format!(
                "step {} holds at {}% until someone resumes it",
                index + 1,
                percentage_of(step.share)
            );
        }
    }
    if grew {
        let detail = format!(
            "step {} of {}: {}%",
            index + 1,
            plan.len(),
            percentage_of(deployment.share)
        );
        events.push(Event::new(EventKind::PercentageChanged, deployment, actor, detail));
    }
    if deployment.state == State::Paused {
        let reason = deployment.reason.clone();
        events.push(Event::new(EventKind::Paused, deployment, actor, reason));
    }
}

fn enter_bake(deployment: &mut Deployment, now: i64, actor: &str, events: &mut Vec<Event>) {
    deployment.step = baking_step(deployment);
    deployment.step_started_ms = now;
    deployment.reason.clear();
    reset_runs(deployment);
    if deployment.share != FULL {
        deployment.share = FULL;
        events.push(Event::new(EventKind::PercentageChanged, deployment, actor, "100%"));
    }
    let bake = deployment.strategy.bake_ms;
    if bake == 0 {
        return complete(deployment, now, actor, events);
    }
    deployment.state = State::Baking;
    deployment.due_ms = Some(now + bake);
    deployment.paused_left_ms = None;
    let detail = format!("baking for {} s", bake / 1000);
    events.push(Event::new(EventKind::BakeStarted, deployment, actor, detail));
}

fn complete(deployment: &mut Deployment, now: i64, actor: &str, events: &mut Vec<Event>) {
    deployment.state = State::Complete;
    deployment.share = FULL;
    deployment.due_ms = None;
    deployment.ended_ms = now;
    deployment.reason.clear();
    events.push(Event::new(EventKind::Completed, deployment, actor, ""));
}

fn reset_runs(deployment: &mut Deployment) {
    for tally in &mut deployment.tallies {
        tally.successes_in_row = 0;
        tally.last_outcome.clear();
    }
}

/// VALIDATING → the first step (or straight to the bake for a strategy of one 100% step).
pub fn start(deployment: &mut Deployment, now: i64, actor: &str) -> Vec<Event> {
    touch(deployment, now);
    let mut events = vec![Event::new(EventKind::Started, deployment, actor, "")];
    enter_step(deployment, 0, now, actor, &mut events);
    events
}

/// VALIDATING → ROLLED_BACK without serving anything: a pre-start check refused it.
pub fn refuse(deployment: &mut Deployment, now: i64, actor: &str, reason: &str) -> Vec<Event> {
    touch(deployment, now);
    deployment.state = State::RolledBack;
    deployment.share = 0;
    deployment.due_ms = None;
    deployment.ended_ms = now;
    deployment.reason = reason.to_owned();
    vec![Event::new(EventKind::Refused, deployment, actor, reason)]
}

/// QUEUED → VALIDATING, once the target's active slot is free.
pub fn dequeue(deployment: &mut Deployment, now: i64) -> Vec<Event> {
    touch(deployment, now);
    deployment.state = State::Validating;
    Vec::new()
}

/// True when the current step's hold (or the bake) is over and every gate has passed often
/// enough in a row within it.
pub fn may_advance(deployment: &Deployment, now: i64) -> bool {
    let moving = matches!(deployment.state, State::Deploying | State::Baking);
    let due = deployment.due_ms.is_some_and(|due| now >= due);
    let runs_met = deployment
        .gates
        .iter()
        .zip(&deployment.tallies)
        .all(|(gate, tally)| tally.successes_in_row >= gate.consecutive_successes);
    moving && due && runs_met
}

/// The next step, the bake, or completion.
pub fn advance(deployment: &mut Deployment, now: i64) -> Vec<Event> {
    touch(deployment, now);
    let mut events = Vec::new();
    match deployment.state {
        State::Baking => complete(deployment, now, DRIVER, &mut events),
        State::Deploying => enter_step(deployment, deployment.step + 1, now, DRIVER, &mut events),
        _ => {}
    }
    events
}

/// DEPLOYING or BAKING → PAUSED, keeping what is left of the hold.
pub fn pause(deployment: &mut Deployment, now: i64, actor: &str, reason: &str) -> ConfigResult<Vec<Event>> {
    if !matches!(deployment.state, State::Deploying | State::Baking) {
        return Err(not_now(deployment, "paused"));
    }
    touch(deployment, now);
    deployment.paused_left_ms = deployment.due_ms.map(|due| (due - now).max(0));
    deployment.due_ms = None;
    deployment.state = State::Paused;
    deployment.reason = reason.to_owned();
    Ok(vec![Event::new(EventKind::Paused, deployment, actor, reason)])
}

/// PAUSED → where it was, with the hold that was left; an indefinite hold ends at once.
pub fn resume(deployment: &mut Deployment, now: i64, actor: &str) -> ConfigResult<Vec<Event>> {
    if deployment.state != State::Paused {
        return Err(not_now(deployment, "resumed"));
    }
    touch(deployment, now);
    deployment.state = if deployment.step >= baking_step(deployment) {
        State::Baking
    } else {
        State::Deploying
    };
    deployment.due_ms = Some(now + deployment.paused_left_ms.take().unwrap_or(0));
    deployment.reason.clear();
    reset_runs(deployment);
    Ok(vec![Event::new(EventKind::Resumed, deployment, actor, "")])
}

/// Skips the remaining steps: 100% and the bake now; promoting a bake completes it.
pub fn promote(deployment: &mut Deployment, now: i64, actor: &str) -> ConfigResult<Vec<Event>> {
    if !matches!(deployment.state, State::Deploying | State::Paused | State::Baking) {
        return Err(not_now(deployment, "promoted"));
    }
    touch(deployment, now);
    let mut events = vec![Event::new(EventKind::Promoted, deployment, actor, "")];
    if deployment.step >= baking_step(deployment) {
        complete(deployment, now, actor, &mut events);
    } else {
        enter_bake(deployment, now, actor, &mut events);
    }
    Ok(events)
}

/// Any active state → ROLLED_BACK: every client back on the previous version.
pub fn roll_back(deployment: &mut Deployment, now: i64, actor: &str, reason: &str) -> ConfigResult<Vec<Event>> {
    if !deployment.state.is_active() && deployment.state != State::Queued {
        return Err(not_now(deployment, "stopped"));
    }
    touch(deployment, now);
    let was_serving = deployment.state != State::Queued && deployment.state != State::Validating;
    deployment.state = State::RollingBack;
    deployment.reason = reason.to_owned();
    let mut events = Vec::new();
    if was_serving {
        events.push(Event::new(EventKind::RollingBack, deployment, actor, reason));
    }
    deployment.state = State::RolledBack;
    deployment.share = 0;
    deployment.due_ms = None;
    deployment.paused_left_ms = None;
    deployment.ended_ms = now;
    events.push(Event::new(EventKind::RolledBack, deployment, actor, reason));
    Ok(events)
}

/// COMPLETE → REVERTED within `window_ms` of completion: the previous version again, at once.
pub fn revert(deployment: &mut Deployment, now: i64, actor: &str, window_ms: i64) -> ConfigResult<Vec<Event>> {
    if deployment.state != State::Complete {
        return Err(not_now(deployment, "reverted"));
    }
    if now - deployment.ended_ms > window_ms {
        return Err(ConfigError::FailedPrecondition(format!(
            "{} completed more than {} hours ago; deploy the previous version instead",
            deployment.resource(),
            window_ms / 3_600_000
        )));
    }
    touch(deployment, now);
    deployment.state = State::Reverted;
    deployment.share = 0;
    deployment.ended_ms = now;
    Ok(vec![Event::new(EventKind::Reverted, deployment, actor, "")])
}

/// A freeze window keeps the deployment where it is: noted once, with the window named.
pub fn hold(deployment: &mut Deployment, now: i64, actor: &str, reason: &str) -> Vec<Event> {
    if deployment.reason == reason {
        return Vec::new();
    }
    touch(deployment, now);
    deployment.reason = reason.to_owned();
    vec![Event::new(EventKind::Held, deployment, actor, reason)]
}

/// Records a gate's check: passes count towards the step's run, failures beyond the limit roll
/// back, an inconclusive check pauses for a human.
pub fn record_check(deployment: &mut Deployment, gate: usize, outcome: &Outcome, now: i64) -> Vec<Event> {
    let Some(definition) = deployment.gates.get(gate).cloned() else {
        return Vec::new();
    };
    let Some(tally) = deployment.tallies.get_mut(gate) else {
        return Vec::new();
    };
    let changed = tally.last_outcome != outcome.name();
    tally.last_check_ms = now;
    tally.last_outcome = outcome.name().to_owned();
    tally.last_detail = outcome.detail().to_owned();
    let actor = format!("gate:{}", definition.name);
    touch(deployment, now);
    match outcome {
        Outcome::Passed(detail) => {
            if let Some(tally) = deployment.tallies.get_mut(gate) {
                tally.successes_in_row += 1;
            }
            if !changed {
                return Vec::new();
            }
            vec![Event::new(EventKind::CheckPassed, deployment, &actor, detail.clone())]
        }
        Outcome::Failed(detail) => {
            let failures = deployment.tallies.get_mut(gate).map_or(0, |tally| {
                tally.successes_in_row = 0;
                tally.failures += 1;
                tally.failures
            });
            let mut events = vec![Event::new(EventKind::CheckFailed, deployment, &actor, detail.clone())];
            if failures > definition.failure_limit {
                let reason = format!("gate {} failed {failures} time(s): {detail}", definition.name);
                if let Ok(more) = roll_back(deployment, now, &actor, &reason) {
                    events.extend(more);
                }
            }
            events
        }
        Outcome::Inconclusive(detail) => {
            let mut events = vec![Event::new(
                EventKind::CheckInconclusive,
                deployment,
                &actor,
                detail.clone(),
            )];
            let reason = format!("gate {} is inconclusive: {detail}", definition.name);
            if let Ok(more) = pause(deployment, now, &actor, &reason) {
                events.extend(more);
            }
            events
        }
    }
}

/// The gates due for a check now, by index.
pub fn gates_due(deployment: &Deployment, now: i64) -> Vec<usize> {
    if !matches!(deployment.state, State::Deploying | State::Baking) {
        return Vec::new();
    }
    deployment
        .gates
        .iter()
        .zip(&deployment.tallies)
        .enumerate()
        .filter(|(_, (gate, tally))| now >= tally.last_check_ms.max(deployment.step_started_ms) + gate.interval_ms)
        .map(|(index, _)| index)
        .collect()
}

fn not_now(deployment: &Deployment, what: &str) -> ConfigError {
    ConfigError::FailedPrecondition(format!(
        "{} is {} and cannot be {what}",
        deployment.resource(),
        deployment.state.name()
    ))
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
