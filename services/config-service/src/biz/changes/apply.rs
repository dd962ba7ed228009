//! Applying an approved change: checks that what was approved is still what would happen (the
//! config's base did not move, the draft was not edited), then performs it as the applier,
//! marked as an approved change so the environment's policy lets it through. Freeze windows
//! still apply.

use switchyard_platform::auth::Role;

use super::{
    Changes,
    model::{ChangeRequest, Operation},
    repository::ChangeRepository,
};
use crate::biz::{
    deployments::{NewDeployment, repository::DeploymentRepository},
    diff::Change,
    error::{ConfigError, ConfigResult},
    governance::repository::GovernanceRepository,
    model::now_ms,
    publishing::DiffSide,
    repository::Repository,
    store::Caller,
};

/// Why a change cannot apply as approved, and what moved.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub reason: String,
    /// From the change's base release to what is served now.
    pub changes: Vec<Change>,
}

impl<R> Changes<R>
where
    R: Repository + DeploymentRepository + GovernanceRepository + ChangeRepository,
{
    /// What moved since the change was drafted (or rebased); `None` when it applies cleanly.
    pub async fn conflict(&self, caller: Caller<'_>, change: &ChangeRequest) -> ConfigResult<Option<Conflict>> {
        let served = self.served_release(&change.env, &change.config).await?;
        if served != change.base_release {
            let changes = if change.base_release > 0 && served > 0 {
                let from = DiffSide::Release {
                    env: change.env.clone(),
                    config: change.config.clone(),
                    number: change.base_release,
                };
                let to = DiffSide::Current {
                    env: change.env.clone(),
                    config: change.config.clone(),
                };
                self.store.diff(caller, &from, &to).await?
            } else {
                Vec::new()
            };
            let reason = format!(
                "{} moved from release {} to release {} since this change was drafted: rebase it (its approvals \
                 are revoked) and have it approved again",
                change.target_resource(),
                change.base_release,
                served
            );
            return Ok(Some(Conflict { reason, changes }));
        }
        if let Operation::Publish { draft_version, .. } = &change.operation {
            let draft = self
                .repository
                .config(&change.env.tenant, &change.env.project, &change.config)
                .await?;
            let current = draft.map_or(0, |draft| draft.version);
            if current != *draft_version {
                let reason = format!(
                    "the draft of {} was edited since this change was drafted (version {draft_version}, now \
                     {current}): rebase it and have it approved again",
                    change.config
                );
                return Ok(Some(Conflict {
                    reason,
                    changes: Vec::new(),
                }));
            }
        }
        Ok(None)
    }

    /// Applies an approved change now; needs the publisher role on the config.
    pub async fn apply(
        &self,
        caller: Caller<'_>,
        env: &crate::biz::model::EnvKey,
        number: i64,
    ) -> ConfigResult<ChangeRequest> {
        let before = self.load(env, number).await?;
        caller.require(Role::Publisher, &before.target_resource())?;
        self.apply_loaded(caller, before).await
    }

    pub(super) async fn apply_loaded(&self, caller: Caller<'_>, before: ChangeRequest) -> ConfigResult<ChangeRequest> {
        let policy = self.policy(&before.env).await?;
        let mut after = before.clone();
        let approved = after.require_approved(&policy, now_ms());
        if approved.is_err() {
            return self
                .settle_outcome(caller, &before, after, approved, "change_request.expire")
                .await;
        }
        if let Some(conflict) = self.conflict(caller, &before).await? {
            return Err(ConfigError::FailedPrecondition(conflict.reason));
        }
        let name = before.resource();
        let applying = Caller {
            change_request: Some(&name),
            ..caller
        };
        let outcome = self.perform(applying, &before).await?;
        after.applied(&outcome, now_ms());
        self.save(caller, &before, after, "change_request.apply").await
    }

    /// Does what the change says; returns the resource it made.
    async fn perform(&self, caller: Caller<'_>, change: &ChangeRequest) -> ConfigResult<String> {
        let env = &change.env;
        let marker = format!("{} ({})", change.title, change.resource());
        match &change.operation {
            Operation::Publish { draft_version, message } => {
                let message = if message.is_empty() {
                    marker
                } else {
                    format!("{message} ({})", change.resource())
                };
                let release = self
                    .store
                    .publish(
                        caller,
                        &env.project,
                        &change.config,
                        &env.environment,
                        &message,
                        &draft_version.to_string(),
                    )
                    .await?;
                Ok(release.release_name())
            }
            Operation::Rollback { release, message } => {
                let message = if message.is_empty() {
                    marker
                } else {
                    format!("{message} ({})", change.resource())
                };
                let view = self
                    .store
                    .rollback(caller, env, &change.config, *release, &message)
                    .await?;
                Ok(view.release_name())
            }
            Operation::Deploy(spec) => {
                let request = NewDeployment {
                    env: env.clone(),
                    config: change.config.clone(),
                    release: spec.release,
                    strategy: spec.strategy.clone(),
                    gates: spec.gates.clone(),
                    description: if spec.description.is_empty() {
                        marker
                    } else {
                        spec.description.clone()
                    },
                    seed: spec.seed.clone(),
                    pre_start_webhook: spec.pre_start_webhook.clone(),
                    webhooks: spec.webhooks.clone(),
                };
                let deployment = self.deployments.create(caller, request).await?;
                Ok(deployment.resource())
            }
        }
    }
}
