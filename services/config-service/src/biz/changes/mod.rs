//! Change requests: how a protected environment changes. An editor drafts a change (publish the
//! draft as it is now, roll back to a release, or start a deployment), submits it for review;
//! eligible approvers approve or reject it; once enough approvals count it is applied by a
//! publisher, at once or at a scheduled time in an IANA zone. Editing a change revokes its
//! approvals. A change whose base moved (the config was published otherwise meanwhile, or its
//! draft was edited) must be rebased before it applies, and shows the difference.
//!
//! Edit and publish stay separate rights (Apollo's model): drafting needs the editor role,
//! applying the publisher role, approving a place in the environment's policy.

pub mod apply;
pub mod model;
pub mod repository;
pub mod scheduler;

use std::sync::Arc;

use chrono::{NaiveDateTime, TimeZone};
use switchyard_platform::auth::{AuthError, Role};

use self::{
    model::{ChangeRequest, ChangeState, Operation},
    repository::ChangeRepository,
};
use super::{
    deployments::{Deployments, repository::DeploymentRepository},
    error::{ConfigError, ConfigResult},
    governance::{Governance, policy::ApprovalPolicy, repository::GovernanceRepository},
    input::{MAX_DISPLAY_NAME, MAX_MESSAGE, check_length},
    model::{EnvKey, now_ms},
    repository::{Repository, StoreError},
    store::{Caller, ConfigStore},
};

/// A change as drafted or edited.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub config: String,
    pub operation: Operation,
    pub title: String,
    pub description: String,
}

pub struct Changes<R> {
    store: Arc<ConfigStore<R>>,
    deployments: Arc<Deployments<R>>,
    governance: Arc<Governance<R>>,
    repository: Arc<R>,
}

impl<R> std::fmt::Debug for Changes<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

impl<R> Changes<R>
where
    R: Repository + DeploymentRepository + GovernanceRepository + ChangeRepository,
{
    pub fn new(
        store: Arc<ConfigStore<R>>,
        deployments: Arc<Deployments<R>>,
        governance: Arc<Governance<R>>,
        repository: Arc<R>,
    ) -> Self {
        Changes {
            store,
            deployments,
            governance,
            repository,
        }
    }

    /// A requested page size, bounded as every list of the service bounds it.
    pub fn page_size(&self, requested: i32) -> i64 {
        self.store.page_size(requested)
    }

    async fn policy(&self, env: &EnvKey) -> ConfigResult<ApprovalPolicy> {
        self.governance.policy_of(env).await?.ok_or_else(|| {
            ConfigError::FailedPrecondition(format!(
                "{} is not protected (it has no approval policy): change it directly",
                env.resource()
            ))
        })
    }

    async fn load(&self, env: &EnvKey, number: i64) -> ConfigResult<ChangeRequest> {
        self.repository
            .change(env, number)
            .await?
            .ok_or_else(|| ConfigError::NotFound(format!("{}/changeRequests/{number}", env.resource())))
    }

    /// The release the config is served now (0 when it is not published there).
    async fn served_release(&self, env: &EnvKey, config: &str) -> ConfigResult<i64> {
        match self.store.delivery().current(env, config).await {
            Ok(entry) => Ok(entry.served.release),
            Err(ConfigError::NotFound(_)) => Ok(0),
            Err(other) => Err(other),
        }
    }

    /// Fills in what the proposal leaves to now (the draft version to publish) and checks it.
    async fn settle(&self, caller: Caller<'_>, env: &EnvKey, proposal: &mut Proposal) -> ConfigResult<()> {
        check_length("title", &proposal.title, MAX_DISPLAY_NAME)?;
        check_length("description", &proposal.description, MAX_MESSAGE)?;
        if proposal.title.trim().is_empty() {
            return Err(ConfigError::invalid(
                "title",
                "required: what the change does, in a line",
            ));
        }
        let draft = self
            .repository
            .config(&env.tenant, &env.project, &proposal.config)
            .await?
            .ok_or_else(|| ConfigError::NotFound(format!("projects/{}/configs/{}", env.project, proposal.config)))?;
        match &mut proposal.operation {
            Operation::Publish { draft_version, message } => {
                check_length("message", message, MAX_MESSAGE)?;
                *draft_version = draft.version;
                let (violations, _) = self
                    .store
                    .validate(caller, &env.project, &proposal.config, Some(&env.environment), None)
                    .await?;
                if !violations.is_empty() {
                    return Err(ConfigError::Validation(violations));
                }
            }
            Operation::Rollback { release, message } => {
                check_length("message", message, MAX_MESSAGE)?;
                if self
                    .repository
                    .release(env, &proposal.config, *release)
                    .await?
                    .is_none()
                {
                    return Err(ConfigError::NotFound(format!(
                        "{}/configs/{}/releases/{release}",
                        env.resource(),
                        proposal.config
                    )));
                }
            }
            Operation::Deploy(spec) => {
                check_length("description", &spec.description, MAX_MESSAGE)?;
                if spec.strategy.is_empty() {
                    return Err(ConfigError::invalid("deploy.strategy", "required"));
                }
            }
        }
        Ok(())
    }

    /// Drafts a change to a protected environment; needs the editor role on the config.
    pub async fn create(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        mut proposal: Proposal,
    ) -> ConfigResult<ChangeRequest> {
        let target = format!("{}/configs/{}", env.resource(), proposal.config);
        caller.require(Role::Editor, &target)?;
        self.policy(env).await?;
        self.settle(caller, env, &mut proposal).await?;
        let now = now_ms();
        let change = ChangeRequest {
            env: env.clone(),
            number: 0,
            base_release: self.served_release(env, &proposal.config).await?,
            config: proposal.config,
            operation: proposal.operation,
            title: proposal.title,
            description: proposal.description,
            author: caller.principal.subject.clone(),
            state: ChangeState::Draft,
            approvals: Vec::new(),
            rejected_by: String::new(),
            rejection: String::new(),
            scheduled_ms: 0,
            schedule_zone: String::new(),
            scheduled_by: String::new(),
            outcome: String::new(),
            created_ms: now,
            updated_ms: now,
            revision: 1,
        };
        let audit = caller.audit("change_request.create", &target, None, None);
        Ok(self.repository.create_change(&change, &audit).await?)
    }

    pub async fn get(&self, caller: Caller<'_>, env: &EnvKey, number: i64) -> ConfigResult<ChangeRequest> {
        caller.require(Role::Viewer, &env.resource())?;
        self.load(env, number).await
    }

    pub async fn list(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        state: Option<ChangeState>,
        before: i64,
        page_size: i32,
    ) -> ConfigResult<Vec<ChangeRequest>> {
        caller.require(Role::Viewer, &env.resource())?;
        let limit = self.store.page_size(page_size);
        Ok(self.repository.list_changes(env, state, before, limit).await?)
    }

    /// Stores a change computed from `before`, with one audit entry for `action`.
    async fn save(
        &self,
        caller: Caller<'_>,
        before: &ChangeRequest,
        mut after: ChangeRequest,
        action: &str,
    ) -> ConfigResult<ChangeRequest> {
        after.revision = before.revision + 1;
        let audit = caller.audit(action, &before.resource(), None, None);
        self.repository
            .update_change(&after, before.revision, &[audit])
            .await
            .map_err(|error| match error {
                StoreError::Conflict => ConfigError::Conflict(before.resource()),
                other => other.into(),
            })?;
        Ok(after)
    }

    fn require_author_or(&self, caller: Caller<'_>, change: &ChangeRequest, role: Role) -> ConfigResult<()> {
        if caller.principal.subject == change.author {
            return Ok(());
        }
        caller.require(role, &change.target_resource())
    }

    /// Replaces what the change proposes; every approval is revoked.
    pub async fn edit(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        number: i64,
        mut proposal: Proposal,
    ) -> ConfigResult<ChangeRequest> {
        let before = self.load(env, number).await?;
        self.require_author_or(caller, &before, Role::Admin)?;
        caller.require(Role::Editor, &before.target_resource())?;
        if proposal.config != before.config {
            return Err(ConfigError::invalid(
                "config",
                "a change keeps its config; draft another change",
            ));
        }
        self.settle(caller, env, &mut proposal).await?;
        let mut after = before.clone();
        after.edited(now_ms())?;
        after.operation = proposal.operation;
        after.title = proposal.title;
        after.description = proposal.description;
        self.save(caller, &before, after, "change_request.edit").await
    }

    pub async fn submit(&self, caller: Caller<'_>, env: &EnvKey, number: i64) -> ConfigResult<ChangeRequest> {
        let before = self.load(env, number).await?;
        self.require_author_or(caller, &before, Role::Admin)?;
        let mut after = before.clone();
        after.submit(now_ms())?;
        self.save(caller, &before, after, "change_request.submit").await
    }

    pub async fn approve(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        number: i64,
        comment: &str,
    ) -> ConfigResult<ChangeRequest> {
        check_length("comment", comment, MAX_MESSAGE)?;
        let before = self.load(env, number).await?;
        let policy = self.policy(env).await?;
        policy
            .may_approve(caller.principal, &before.target_resource(), &before.author)
            .map_err(|reason| ConfigError::Auth(AuthError::Forbidden(reason)))?;
        let mut after = before.clone();
        after.approve(&policy, &caller.principal.subject, comment, now_ms())?;
        self.save(caller, &before, after, "change_request.approve").await
    }

    pub async fn reject(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        number: i64,
        reason: &str,
    ) -> ConfigResult<ChangeRequest> {
        check_length("reason", reason, MAX_MESSAGE)?;
        let before = self.load(env, number).await?;
        let policy = self.policy(env).await?;
        let lenient = ApprovalPolicy {
            allow_self_approval: true,
            ..policy
        };
        lenient
            .may_approve(caller.principal, &before.target_resource(), &before.author)
            .map_err(|reason| ConfigError::Auth(AuthError::Forbidden(reason)))?;
        let mut after = before.clone();
        after.reject(&caller.principal.subject, reason, now_ms())?;
        self.save(caller, &before, after, "change_request.reject").await
    }

    pub async fn cancel(&self, caller: Caller<'_>, env: &EnvKey, number: i64) -> ConfigResult<ChangeRequest> {
        let before = self.load(env, number).await?;
        self.require_author_or(caller, &before, Role::Admin)?;
        let mut after = before.clone();
        after.cancel(now_ms())?;
        self.save(caller, &before, after, "change_request.cancel").await
    }

    /// Schedules an approved change for `local` time (`YYYY-MM-DDTHH:MM[:SS]`) in `zone`;
    /// needs the publisher role on the config.
    pub async fn schedule(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        number: i64,
        local: &str,
        zone: &str,
    ) -> ConfigResult<ChangeRequest> {
        let at = instant_in_zone(local, zone)?;
        let before = self.load(env, number).await?;
        caller.require(Role::Publisher, &before.target_resource())?;
        let policy = self.policy(env).await?;
        let mut after = before.clone();
        let now = now_ms();
        let scheduled = after.schedule(&policy, (at, zone), &caller.principal.subject, now);
        self.settle_outcome(caller, &before, after, scheduled, "change_request.schedule")
            .await
    }

    /// Stores the change when the transition worked, or when it failed but still moved the
    /// change (an expired approval sends it back to review even as the request is refused).
    async fn settle_outcome(
        &self,
        caller: Caller<'_>,
        before: &ChangeRequest,
        after: ChangeRequest,
        result: ConfigResult<()>,
        action: &str,
    ) -> ConfigResult<ChangeRequest> {
        if let Err(error) = result {
            if after.state != before.state {
                self.save(caller, before, after, action).await?;
            }
            return Err(error);
        }
        self.save(caller, before, after, action).await
    }

    /// Takes the config's current state as the change's new base (and, for a publish, the
    /// draft as it is now); every approval is revoked.
    pub async fn rebase(&self, caller: Caller<'_>, env: &EnvKey, number: i64) -> ConfigResult<ChangeRequest> {
        let before = self.load(env, number).await?;
        self.require_author_or(caller, &before, Role::Admin)?;
        caller.require(Role::Editor, &before.target_resource())?;
        let mut proposal = Proposal {
            config: before.config.clone(),
            operation: before.operation.clone(),
            title: before.title.clone(),
            description: before.description.clone(),
        };
        self.settle(caller, env, &mut proposal).await?;
        let mut after = before.clone();
        after.edited(now_ms())?;
        after.operation = proposal.operation;
        after.base_release = self.served_release(env, &before.config).await?;
        self.save(caller, &before, after, "change_request.rebase").await
    }
}

/// An instant from a local time in an IANA zone. A local time that does not exist (skipped by
/// a daylight-saving change) or happens twice is refused rather than guessed.
pub fn instant_in_zone(local: &str, zone: &str) -> ConfigResult<i64> {
    let tz: chrono_tz::Tz = zone
        .parse()
        .map_err(|_| ConfigError::invalid("time_zone", format!("`{zone}` is not an IANA zone")))?;
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M"))
        .map_err(|_| ConfigError::invalid("schedule_time", "a local time such as 2026-12-08T00:30"))?;
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(at) => Ok(at.timestamp_millis()),
        _ => Err(ConfigError::invalid(
            "schedule_time",
            format!("{local} does not exist once in {zone} (a daylight-saving change)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dhaka_half_past_midnight_is_the_previous_day_in_utc() {
        let at = instant_in_zone("2026-12-08T00:30", "Asia/Dhaka").unwrap();
        let utc = chrono::DateTime::from_timestamp_millis(at).unwrap();
        assert_eq!(utc.to_rfc3339(), "2026-12-07T18:30:00+00:00");
        assert!(
            instant_in_zone("2026-03-29T02:30", "Europe/Berlin").is_err(),
            "skipped by DST"
        );
        assert!(instant_in_zone("2026-12-08T00:30", "Dhaka").is_err());
        assert!(instant_in_zone("tomorrow", "Asia/Dhaka").is_err());
    }
}
