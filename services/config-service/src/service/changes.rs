//! Approval policies and change requests of `switchyard.config.v1.GovernanceService`, mapped
//! to `biz::governance` and `biz::changes`. (`governance.rs` maps the freeze windows and owns
//! the service; it calls in here.)

use switchyard_api::config::v1 as pb;
use switchyard_platform::proto_json::timestamp;

use super::{
    convert,
    delivery_convert::{duration, duration_ms, gate_of},
};
use crate::biz::{
    changes::{
        Proposal,
        apply::Conflict,
        model::{ChangeRequest, ChangeState, DeploySpec, Operation},
    },
    error::{ConfigError, ConfigResult},
    governance::policy::ApprovalPolicy,
    model::{EnvKey, now_ms},
    names::parse,
    store::Caller,
};

pub fn policy_of(message: &pb::ApprovalPolicy) -> ConfigResult<ApprovalPolicy> {
    Ok(ApprovalPolicy {
        required: message.required_approvals,
        roles: message.approver_roles.clone(),
        principals: message.approver_principals.clone(),
        allow_self_approval: message.allow_self_approval,
        approval_ttl_ms: duration_ms("approval_ttl", message.approval_ttl.as_ref())?,
    })
}

pub fn policy(env: &EnvKey, policy: &ApprovalPolicy, version: i64) -> pb::ApprovalPolicy {
    pb::ApprovalPolicy {
        name: format!("{}/approvalPolicy", env.resource()),
        required_approvals: policy.required,
        approver_roles: policy.roles.clone(),
        approver_principals: policy.principals.clone(),
        allow_self_approval: policy.allow_self_approval,
        approval_ttl: (policy.approval_ttl_ms > 0)
            .then(|| duration(policy.approval_ttl_ms))
            .flatten(),
        etag: version.to_string(),
    }
}

/// `projects/{p}/environments/{e}/approvalPolicy`.
pub fn policy_ref(caller: &Caller<'_>, field: &str, name: &str) -> ConfigResult<EnvKey> {
    let Some(parent) = name.strip_suffix("/approvalPolicy") else {
        return Err(ConfigError::invalid(
            field,
            "expected `projects/*/environments/*/approvalPolicy`",
        ));
    };
    let ids = parse(field, parent, "projects/*/environments/*")?;
    Ok(EnvKey::new(caller.tenant(), &ids[0], &ids[1]))
}

pub fn change_ref(caller: &Caller<'_>, field: &str, name: &str) -> ConfigResult<(EnvKey, i64)> {
    let ids = parse(field, name, "projects/*/environments/*/changeRequests/*")?;
    let number = ids[2]
        .parse::<i64>()
        .ok()
        .filter(|number| *number > 0)
        .ok_or_else(|| ConfigError::invalid(field, "the change request number must be a positive integer"))?;
    Ok((EnvKey::new(caller.tenant(), &ids[0], &ids[1]), number))
}

pub fn proposal_of(message: &pb::ChangeRequest) -> ConfigResult<Proposal> {
    if message.config.is_empty() {
        return Err(ConfigError::invalid("change_request.config", "required: the config id"));
    }
    let operation = match &message.operation {
        Some(pb::change_request::Operation::Publish(publish)) => Operation::Publish {
            draft_version: 0,
            message: publish.message.clone(),
        },
        Some(pb::change_request::Operation::Rollback(rollback)) => Operation::Rollback {
            release: i64::try_from(rollback.release)
                .ok()
                .filter(|release| *release > 0)
                .ok_or_else(|| ConfigError::invalid("change_request.rollback.release", "a release number"))?,
            message: rollback.message.clone(),
        },
        Some(pb::change_request::Operation::Deploy(deploy)) => {
            let deployment = deploy.deployment.clone().unwrap_or_default();
            let gates = deployment
                .gates
                .iter()
                .enumerate()
                .map(|(index, gate)| gate_of(index, gate))
                .collect::<ConfigResult<Vec<_>>>()?;
            Operation::Deploy(DeploySpec {
                release: i64::try_from(deployment.release)
                    .map_err(|_| ConfigError::invalid("change_request.deploy.deployment.release", "too large"))?,
                strategy: deployment.strategy,
                gates,
                description: deployment.description,
                seed: deployment.seed,
                pre_start_webhook: deployment.pre_start_webhook,
                webhooks: deployment.notification_webhooks,
            })
        }
        None => {
            return Err(ConfigError::invalid(
                "change_request.operation",
                "one of `publish`, `rollback` or `deploy`",
            ));
        }
    };
    Ok(Proposal {
        config: message.config.clone(),
        operation,
        title: message.title.clone(),
        description: message.description.clone(),
    })
}

fn state(state: ChangeState) -> pb::change_request::State {
    use pb::change_request::State as S;
    match state {
        ChangeState::Draft => S::Draft,
        ChangeState::InReview => S::InReview,
        ChangeState::Approved => S::Approved,
        ChangeState::Scheduled => S::Scheduled,
        ChangeState::Applied => S::Applied,
        ChangeState::Rejected => S::Rejected,
        ChangeState::Cancelled => S::Cancelled,
    }
}

pub fn state_of(value: i32) -> ConfigResult<Option<ChangeState>> {
    use pb::change_request::State as S;
    let state = match S::try_from(value) {
        Ok(S::Unspecified) => return Ok(None),
        Ok(S::Draft) => ChangeState::Draft,
        Ok(S::InReview) => ChangeState::InReview,
        Ok(S::Approved) => ChangeState::Approved,
        Ok(S::Scheduled) => ChangeState::Scheduled,
        Ok(S::Applied) => ChangeState::Applied,
        Ok(S::Rejected) => ChangeState::Rejected,
        Ok(S::Cancelled) => ChangeState::Cancelled,
        Err(_) => return Err(ConfigError::invalid("state", "a change request state")),
    };
    Ok(Some(state))
}

fn operation(operation: &Operation) -> pb::change_request::Operation {
    match operation {
        Operation::Publish { draft_version, message } => pb::change_request::Operation::Publish(pb::PublishChange {
            message: message.clone(),
            draft_version: *draft_version,
        }),
        Operation::Rollback { release, message } => pb::change_request::Operation::Rollback(pb::RollbackChange {
            release: u64::try_from(*release).unwrap_or(0),
            message: message.clone(),
        }),
        Operation::Deploy(spec) => pb::change_request::Operation::Deploy(pb::DeployChange {
            deployment: Some(pb::Deployment {
                release: u64::try_from(spec.release).unwrap_or(0),
                strategy: spec.strategy.clone(),
                gates: spec.gates.iter().map(super::delivery_convert::gate).collect(),
                description: spec.description.clone(),
                seed: spec.seed.clone(),
                pre_start_webhook: spec.pre_start_webhook.clone(),
                notification_webhooks: spec.webhooks.clone(),
                ..Default::default()
            }),
        }),
    }
}

/// A change as callers see it, with its policy's view of the approvals and any conflict.
pub fn change(
    change: &ChangeRequest,
    policy: Option<&ApprovalPolicy>,
    conflict: Option<&Conflict>,
) -> pb::ChangeRequest {
    let now = now_ms();
    let counts = |decided_ms: i64| {
        policy.is_none_or(|policy| policy.approval_ttl_ms == 0 || now < decided_ms + policy.approval_ttl_ms)
    };
    pb::ChangeRequest {
        name: change.resource(),
        config: change.config.clone(),
        operation: Some(operation(&change.operation)),
        title: change.title.clone(),
        description: change.description.clone(),
        author: change.author.clone(),
        base_release: u64::try_from(change.base_release).unwrap_or(0),
        state: state(change.state) as i32,
        approvals: change
            .approvals
            .iter()
            .map(|approval| pb::ChangeApproval {
                approver: approval.approver.clone(),
                comment: approval.comment.clone(),
                create_time: timestamp(approval.decided_ms),
                counts: counts(approval.decided_ms),
            })
            .collect(),
        required_approvals: policy.map_or(0, |policy| policy.required),
        rejected_by: change.rejected_by.clone(),
        rejection: change.rejection.clone(),
        schedule_time: (change.scheduled_ms > 0)
            .then(|| timestamp(change.scheduled_ms))
            .flatten(),
        schedule_zone: change.schedule_zone.clone(),
        scheduled_by: change.scheduled_by.clone(),
        outcome: change.outcome.clone(),
        conflict: conflict.map(|conflict| conflict.reason.clone()).unwrap_or_default(),
        conflict_changes: conflict
            .map(|conflict| conflict.changes.iter().map(convert::change).collect())
            .unwrap_or_default(),
        create_time: timestamp(change.created_ms),
        update_time: timestamp(change.updated_ms),
        etag: change.revision.to_string(),
    }
}
