//! Change requests: a change to a protected environment, proposed, reviewed, approved, then
//! applied (at once or at a scheduled time). Pure: the nouns and the state transitions.

use serde::{Deserialize, Serialize};

use crate::biz::{
    deployments::gates::Gate,
    error::{ConfigError, ConfigResult},
    governance::policy::{Approval, ApprovalPolicy},
    model::EnvKey,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeState {
    Draft,
    InReview,
    Approved,
    Scheduled,
    Applied,
    Rejected,
    Cancelled,
}

impl ChangeState {
    pub const ALL: [ChangeState; 7] = [
        ChangeState::Draft,
        ChangeState::InReview,
        ChangeState::Approved,
        ChangeState::Scheduled,
        ChangeState::Applied,
        ChangeState::Rejected,
        ChangeState::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChangeState::Draft => "DRAFT",
            ChangeState::InReview => "IN_REVIEW",
            ChangeState::Approved => "APPROVED",
            ChangeState::Scheduled => "SCHEDULED",
            ChangeState::Applied => "APPLIED",
            ChangeState::Rejected => "REJECTED",
            ChangeState::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<ChangeState> {
        ChangeState::ALL.into_iter().find(|state| state.name() == text)
    }

    pub fn is_open(self) -> bool {
        !matches!(
            self,
            ChangeState::Applied | ChangeState::Rejected | ChangeState::Cancelled
        )
    }
}

/// A deployment to create once the change is approved (see `deployments::NewDeployment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploySpec {
    /// 0 stages the draft when the change is applied.
    pub release: i64,
    pub strategy: String,
    pub gates: Vec<Gate>,
    pub description: String,
    pub seed: String,
    pub pre_start_webhook: String,
    pub webhooks: Vec<String>,
}

/// What the change does to its config when applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Operation {
    /// Publishes the draft as it was at `draft_version` (what the reviewers saw).
    Publish { draft_version: i64, message: String },
    /// Publishes an earlier release again.
    Rollback { release: i64, message: String },
    /// Creates a deployment.
    Deploy(DeploySpec),
}

impl Operation {
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Publish { .. } => "publish",
            Operation::Rollback { .. } => "rollback",
            Operation::Deploy(_) => "deploy",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRequest {
    pub env: EnvKey,
    /// `{number}` of `projects/{p}/environments/{e}/changeRequests/{number}`, from 1.
    pub number: i64,
    pub config: String,
    pub operation: Operation,
    pub title: String,
    pub description: String,
    pub author: String,
    /// The release the config was served when the change was drafted (or last rebased); 0
    /// when it was not published. Applying a change whose base moved needs a rebase.
    pub base_release: i64,
    pub state: ChangeState,
    pub approvals: Vec<Approval>,
    /// Who rejected it and why; empty otherwise.
    pub rejected_by: String,
    pub rejection: String,
    /// When it is to be applied, and the zone the time was given in.
    pub scheduled_ms: i64,
    pub schedule_zone: String,
    /// Who scheduled it; the scheduler applies it on their behalf.
    pub scheduled_by: String,
    /// What applying it did (a release or deployment name), or why the last attempt failed.
    pub outcome: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub revision: i64,
}

impl ChangeRequest {
    pub fn resource(&self) -> String {
        format!("{}/changeRequests/{}", self.env.resource(), self.number)
    }

    pub fn target_resource(&self) -> String {
        format!("{}/configs/{}", self.env.resource(), self.config)
    }

    fn refuse(&self, what: &str) -> ConfigError {
        ConfigError::FailedPrecondition(format!(
            "{} is {} and cannot be {what}",
            self.resource(),
            self.state.name()
        ))
    }

    /// DRAFT → IN_REVIEW.
    pub fn submit(&mut self, now: i64) -> ConfigResult<()> {
        if self.state != ChangeState::Draft {
            return Err(self.refuse("submitted"));
        }
        self.state = ChangeState::InReview;
        self.updated_ms = now;
        Ok(())
    }

    /// An edit: what was approved is not what is proposed now, so every approval is revoked
    /// and an approved change goes back to review.
    pub fn edited(&mut self, now: i64) -> ConfigResult<()> {
        if !self.state.is_open() {
            return Err(self.refuse("edited"));
        }
        self.approvals.clear();
        self.unschedule();
        if matches!(self.state, ChangeState::Approved | ChangeState::Scheduled) {
            self.state = ChangeState::InReview;
        }
        self.updated_ms = now;
        Ok(())
    }

    /// Records `approver`'s approval (once per approver); APPROVED when the policy is met.
    pub fn approve(&mut self, policy: &ApprovalPolicy, approver: &str, comment: &str, now: i64) -> ConfigResult<()> {
        if !matches!(self.state, ChangeState::InReview | ChangeState::Approved) {
            return Err(self.refuse("approved"));
        }
        self.approvals.retain(|approval| approval.approver != approver);
        self.approvals.push(Approval {
            approver: approver.to_owned(),
            comment: comment.to_owned(),
            decided_ms: now,
        });
        if policy.satisfied(&self.approvals, now) {
            self.state = ChangeState::Approved;
        }
        self.updated_ms = now;
        Ok(())
    }

    pub fn reject(&mut self, rejecter: &str, reason: &str, now: i64) -> ConfigResult<()> {
        if !matches!(
            self.state,
            ChangeState::InReview | ChangeState::Approved | ChangeState::Scheduled
        ) {
            return Err(self.refuse("rejected"));
        }
        self.state = ChangeState::Rejected;
        self.rejected_by = rejecter.to_owned();
        self.rejection = reason.to_owned();
        self.updated_ms = now;
        Ok(())
    }

    pub fn cancel(&mut self, now: i64) -> ConfigResult<()> {
        if !self.state.is_open() {
            return Err(self.refuse("cancelled"));
        }
        self.state = ChangeState::Cancelled;
        self.updated_ms = now;
        Ok(())
    }

    /// APPROVED → SCHEDULED for `at_ms` (given in `zone`) by `by`.
    pub fn schedule(
        &mut self,
        policy: &ApprovalPolicy,
        (at_ms, zone): (i64, &str),
        by: &str,
        now: i64,
    ) -> ConfigResult<()> {
        self.require_approved(policy, now)?;
        if at_ms <= now {
            return Err(ConfigError::invalid("schedule_time", "in the future"));
        }
        self.state = ChangeState::Scheduled;
        self.scheduled_ms = at_ms;
        self.schedule_zone = zone.to_owned();
        self.scheduled_by = by.to_owned();
        self.updated_ms = now;
        Ok(())
    }

    /// Checks that the change may be applied now: approved (or scheduled) and its approvals
    /// still count. Approvals that expired send it back to review.
    pub fn require_approved(&mut self, policy: &ApprovalPolicy, now: i64) -> ConfigResult<()> {
        if !matches!(self.state, ChangeState::Approved | ChangeState::Scheduled) {
            return Err(self.refuse("applied or scheduled (it needs its approvals first)"));
        }
        if policy.satisfied(&self.approvals, now) {
            return Ok(());
        }
        let counting = policy.counting(&self.approvals, now).len();
        self.state = ChangeState::InReview;
        self.updated_ms = now;
        Err(ConfigError::FailedPrecondition(format!(
            "{}: only {counting} of the {} approvals it needs still count (approvals expire after {} h); \
             ask for approval again",
            self.resource(),
            policy.required,
            policy.approval_ttl_ms / 3_600_000
        )))
    }

    fn unschedule(&mut self) {
        self.scheduled_ms = 0;
        self.schedule_zone.clear();
        self.scheduled_by.clear();
    }

    /// A scheduled apply that failed: back to APPROVED (someone looks and applies or
    /// reschedules), with why.
    pub fn schedule_failed(&mut self, why: &str, now: i64) {
        self.state = ChangeState::Approved;
        self.unschedule();
        self.outcome = format!("the scheduled apply failed: {why}");
        self.updated_ms = now;
    }

    pub fn applied(&mut self, outcome: &str, now: i64) {
        self.state = ChangeState::Applied;
        self.outcome = outcome.to_owned();
        self.updated_ms = now;
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
