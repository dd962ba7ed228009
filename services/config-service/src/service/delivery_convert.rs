//! Proto ↔ domain for progressive delivery: strategies, gates, deployments, events.

use pbjson_types::Duration;
use switchyard_api::config::v1 as pb;
use switchyard_platform::proto_json::timestamp;

use crate::biz::{
    deployments::{
        gates::{Check, Gate, Tally},
        model::{Deployment, Event, State},
        strategy::{Growth, Step, Strategy, find_predefined, percentage_of},
    },
    error::{ConfigError, ConfigResult},
};

/// The longest duration a request may carry, in milliseconds (beyond every limit we check).
const MAX_MS: i64 = 10 * 365 * 24 * 3_600_000;

/// Milliseconds of a proto duration; a negative or absurd one is refused.
pub fn duration_ms(field: &str, duration: Option<&Duration>) -> ConfigResult<i64> {
    let Some(duration) = duration else { return Ok(0) };
    let valid = duration.seconds >= 0 && duration.nanos >= 0 && duration.seconds <= MAX_MS / 1000;
    if !valid {
        return Err(ConfigError::invalid(field, "a positive duration such as \"30s\""));
    }
    Ok(duration.seconds * 1000 + i64::from(duration.nanos) / 1_000_000)
}

pub fn duration(ms: i64) -> Option<Duration> {
    Some(Duration {
        seconds: ms / 1000,
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    })
}

pub fn strategy_of(id: &str, message: &pb::Strategy) -> ConfigResult<Strategy> {
    let growth = match pb::strategy::Growth::try_from(message.growth) {
        Ok(pb::strategy::Growth::Linear) => Growth::Linear {
            factor: message.growth_factor,
        },
        Ok(pb::strategy::Growth::Exponential) => Growth::Exponential {
            factor: message.growth_factor,
        },
        Ok(pb::strategy::Growth::Steps) => {
            let mut steps = Vec::with_capacity(message.steps.len());
            for (index, step) in message.steps.iter().enumerate() {
                let pause = duration_ms(&format!("strategy.steps[{index}].pause"), step.pause.as_ref())?;
                steps.push(Step {
                    percentage: step.percentage,
                    pause_ms: (!step.wait_for_resume).then_some(pause),
                });
            }
            Growth::Steps { steps }
        }
        _ => return Err(ConfigError::invalid("strategy.growth", "LINEAR, EXPONENTIAL or STEPS")),
    };
    Ok(Strategy {
        id: id.to_owned(),
        description: message.description.clone(),
        growth,
        duration_ms: duration_ms("strategy.deployment_duration", message.deployment_duration.as_ref())?,
        bake_ms: duration_ms("strategy.final_bake_time", message.final_bake_time.as_ref())?,
    })
}

pub fn strategy(project: &str, strategy: &Strategy, version: i64) -> pb::Strategy {
    let (growth, factor, steps) = match &strategy.growth {
        Growth::Linear { factor } => (pb::strategy::Growth::Linear, *factor, Vec::new()),
        Growth::Exponential { factor } => (pb::strategy::Growth::Exponential, *factor, Vec::new()),
        Growth::Steps { steps } => (
            pb::strategy::Growth::Steps,
            0.0,
            steps
                .iter()
                .map(|step| pb::StrategyStep {
                    percentage: step.percentage,
                    pause: step.pause_ms.and_then(duration),
                    wait_for_resume: step.pause_ms.is_none(),
                })
                .collect(),
        ),
    };
    let predefined = find_predefined(&strategy.id).is_some();
    pb::Strategy {
        name: format!("projects/{project}/strategies/{}", strategy.id),
        description: strategy.description.clone(),
        growth: growth as i32,
        growth_factor: factor,
        steps,
        deployment_duration: duration(strategy.duration_ms),
        final_bake_time: duration(strategy.bake_ms),
        predefined,
        etag: if predefined { String::new() } else { version.to_string() },
    }
}

pub fn gate_of(index: usize, message: &pb::Gate) -> ConfigResult<Gate> {
    let field = format!("gates[{index}]");
    let check = match &message.check {
        Some(pb::gate::Check::Prometheus(check)) => Check::Prometheus {
            address: check.address.clone(),
            query: check.query.clone(),
            success_condition: check.success_condition.clone(),
            failure_condition: check.failure_condition.clone(),
        },
        Some(pb::gate::Check::ClientHealth(check)) => Check::ClientHealth {
            max_error_rate: check.max_error_rate,
            max_relative_increase: check.max_relative_increase,
            min_sample: check.min_sample,
        },
        None => return Err(ConfigError::invalid(&field, "a `prometheus` or `client_health` check")),
    };
    let interval_ms = match message.interval {
        None => 60_000,
        Some(ref interval) => duration_ms(&format!("{field}.interval"), Some(interval))?,
    };
    Ok(Gate {
        name: message.name.clone(),
        check,
        interval_ms,
        failure_limit: message.failure_limit,
        consecutive_successes: message.consecutive_successes,
    })
}

pub fn gate(gate: &Gate) -> pb::Gate {
    let check = match &gate.check {
        Check::Prometheus {
            address,
            query,
            success_condition,
            failure_condition,
        } => pb::gate::Check::Prometheus(pb::PrometheusCheck {
            address: address.clone(),
            query: query.clone(),
            success_condition: success_condition.clone(),
            failure_condition: failure_condition.clone(),
        }),
        Check::ClientHealth {
            max_error_rate,
            max_relative_increase,
            min_sample,
        } => pb::gate::Check::ClientHealth(pb::ClientHealthCheck {
            max_error_rate: *max_error_rate,
            max_relative_increase: *max_relative_increase,
            min_sample: *min_sample,
        }),
    };
    pb::Gate {
        name: gate.name.clone(),
        check: Some(check),
        interval: duration(gate.interval_ms),
        failure_limit: gate.failure_limit,
        consecutive_successes: gate.consecutive_successes,
    }
}

fn gate_status(gate: &Gate, tally: &Tally) -> pb::GateStatus {
    pb::GateStatus {
        gate: gate.name.clone(),
        failures: tally.failures,
        successes_in_row: tally.successes_in_row,
        last_outcome: tally.last_outcome.clone(),
        last_detail: tally.last_detail.clone(),
        last_check_time: (tally.last_check_ms > 0)
            .then(|| timestamp(tally.last_check_ms))
            .flatten(),
    }
}

pub fn state(state: State) -> pb::deployment::State {
    use pb::deployment::State as S;
    match state {
        State::Queued => S::Queued,
        State::Validating => S::Validating,
        State::Deploying => S::Deploying,
        State::Paused => S::Paused,
        State::Baking => S::Baking,
        State::Complete => S::Complete,
        State::RollingBack => S::RollingBack,
        State::RolledBack => S::RolledBack,
        State::Reverted => S::Reverted,
    }
}

pub fn deployment(deployment: &Deployment) -> pb::Deployment {
    let step_count = deployment.strategy.steps().len() as u32;
    pb::Deployment {
        name: deployment.resource(),
        config: deployment.target.clone(),
        release: u64::try_from(deployment.version).unwrap_or(0),
        previous_release: u64::try_from(deployment.previous).unwrap_or(0),
        strategy: deployment.strategy.id.clone(),
        strategy_definition: Some(strategy(&deployment.env.project, &deployment.strategy, 0)),
        gates: deployment.gates.iter().map(gate).collect(),
        seed: deployment.seed.clone(),
        state: state(deployment.state) as i32,
        percentage: percentage_of(deployment.share),
        step: u32::try_from(deployment.step + 1).unwrap_or(0),
        step_count,
        step_end_time: deployment.due_ms.and_then(timestamp),
        reason: deployment.reason.clone(),
        gate_status: deployment
            .gates
            .iter()
            .zip(&deployment.tallies)
            .map(|(definition, tally)| gate_status(definition, tally))
            .collect(),
        description: deployment.description.clone(),
        created_by: deployment.created_by.clone(),
        create_time: timestamp(deployment.created_ms),
        update_time: timestamp(deployment.updated_ms),
        end_time: (deployment.ended_ms > 0)
            .then(|| timestamp(deployment.ended_ms))
            .flatten(),
        etag: deployment.revision.to_string(),
        pre_start_webhook: deployment.pre_start_webhook.clone(),
        notification_webhooks: deployment.webhooks.clone(),
    }
}

pub fn event(event: &Event) -> pb::DeploymentEvent {
    pb::DeploymentEvent {
        sequence: u64::try_from(event.sequence).unwrap_or(0),
        kind: event.kind.name().to_owned(),
        state: state(event.state) as i32,
        percentage: percentage_of(event.share),
        actor: event.actor.clone(),
        detail: event.detail.clone(),
        create_time: timestamp(event.created_ms),
    }
}
