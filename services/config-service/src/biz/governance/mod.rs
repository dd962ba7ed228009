//! Governance: when configuration may change, and who must agree. Freeze windows refuse
//! publishes, rollbacks, variable changes and new deployments, and hold (or pause) running
//! deployments, with the window named in the error. An environment with an approval policy is
//! protected: changes to it go through change requests (`biz::changes`). Break-glass: a
//! principal with the `emergency` scope may override either by giving a reason (the
//! `x-switchyard-break-glass` header); every override is audited, announced on
//! `$deployments:{project}` and listed in the project's report.

pub mod freeze;
pub mod policy;
pub mod repository;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::json;
use switchyard_platform::auth::Role;

use self::{
    freeze::{FreezeWindow, Opening},
    policy::ApprovalPolicy,
    repository::{BreakGlassUse, GovernanceRepository},
};
use super::{
    error::{ConfigError, ConfigResult},
    input::{check_length, parse_etag},
    model::{EnvKey, now_ms},
    names,
    repository::{Repository, StoreError, require_project},
    store::Caller,
    webhooks::Hooks,
};

/// The scope that lets a principal override a freeze window.
pub const EMERGENCY_SCOPE: &str = "emergency";
/// Where the break-glass reason comes from, as errors name it.
pub const BREAK_GLASS: &str = "x-switchyard-break-glass";
/// Longest break-glass reason, in characters.
pub const MAX_REASON: usize = 1000;
/// The most windows one project may have.
pub const MAX_WINDOWS: usize = 100;

/// Whether a change may happen now. `ConfigStore` and deployments ask before they change what
/// clients are served.
pub trait Admission: Send + Sync + std::fmt::Debug {
    /// Admits `action` on `resource` in `env` by `caller`: refused while a freeze window is
    /// open, unless the caller breaks the glass.
    fn admit<'a>(
        &'a self,
        caller: Caller<'a>,
        env: &'a EnvKey,
        action: &'a str,
        resource: &'a str,
    ) -> BoxFuture<'a, ConfigResult<()>>;

    /// The windows open over `env` now (for the deployment driver).
    fn open_windows<'a>(&'a self, env: &'a EnvKey) -> BoxFuture<'a, ConfigResult<Vec<(FreezeWindow, Opening)>>>;
}

/// A window with what it means now.
#[derive(Debug, Clone)]
pub struct WindowView {
    pub window: FreezeWindow,
    pub version: i64,
    pub open_now: Option<Opening>,
    pub next: Option<Opening>,
}

pub struct Governance<R> {
    repository: Arc<R>,
    hooks: Arc<dyn Hooks>,
}

impl<R> std::fmt::Debug for Governance<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance").finish_non_exhaustive()
    }
}

impl<R: Repository + GovernanceRepository> Governance<R> {
    pub fn new(repository: Arc<R>, hooks: Arc<dyn Hooks>) -> Self {
        Governance { repository, hooks }
    }

    /// Creates (`etag` empty) or replaces a window; needs the admin role on the project.
    pub async fn put_window(
        &self,
        caller: Caller<'_>,
        project: &str,
        window: FreezeWindow,
        etag: &str,
    ) -> ConfigResult<WindowView> {
        let resource = format!("projects/{project}/freezeWindows/{}", window.id);
        caller.require(Role::Admin, &format!("projects/{project}"))?;
        names::check_id("freeze_window_id", &window.id)?;
        for (index, environment) in window.environments.iter().enumerate() {
            names::check_id(&format!("environments[{index}]"), environment)?;
        }
        let now = now_ms();
        window.validate(now)?;
        require_project(self.repository.as_ref(), caller.tenant(), project).await?;
        let expected = if etag.is_empty() { 0 } else { parse_etag(etag)? };
        if expected == 0 && self.repository.windows(caller.tenant(), project).await?.len() >= MAX_WINDOWS {
            return Err(ConfigError::FailedPrecondition(format!(
                "projects/{project} has {MAX_WINDOWS} freeze windows already"
            )));
        }
        let action = if expected == 0 {
            "freeze.create"
        } else {
            "freeze.update"
        };
        let audit = caller.audit(action, &resource, None, None);
        let version = self
            .repository
            .put_window(caller.tenant(), project, &window, expected, &audit)
            .await
            .map_err(|error| match error {
                StoreError::Duplicate => ConfigError::AlreadyExists(resource.clone()),
                StoreError::Conflict => ConfigError::Conflict(resource.clone()),
                other => other.into(),
            })?;
        Ok(view(window, version, now))
    }

    pub async fn windows(&self, caller: Caller<'_>, project: &str) -> ConfigResult<Vec<WindowView>> {
        caller.require(Role::Viewer, &format!("projects/{project}"))?;
        require_project(self.repository.as_ref(), caller.tenant(), project).await?;
        let now = now_ms();
        let stored = self.repository.windows(caller.tenant(), project).await?;
        Ok(stored
            .into_iter()
            .map(|(window, version)| view(window, version, now))
            .collect())
    }

    pub async fn delete_window(&self, caller: Caller<'_>, project: &str, id: &str) -> ConfigResult<()> {
        let resource = format!("projects/{project}/freezeWindows/{id}");
        caller.require(Role::Admin, &format!("projects/{project}"))?;
        let audit = caller.audit("freeze.delete", &resource, None, None);
        self.repository
            .delete_window(caller.tenant(), project, id, &audit)
            .await
            .map_err(|error| match error {
                StoreError::Missing => ConfigError::NotFound(resource.clone()),
                other => other.into(),
            })
    }

    /// The project's break-glass overrides since `since_ms`, newest first; needs the admin role.
    pub async fn break_glass_report(
        &self,
        caller: Caller<'_>,
        project: &str,
        since_ms: i64,
        limit: i64,
    ) -> ConfigResult<Vec<BreakGlassUse>> {
        caller.require(Role::Admin, &format!("projects/{project}"))?;
        require_project(self.repository.as_ref(), caller.tenant(), project).await?;
        Ok(self
            .repository
            .break_glass_uses(caller.tenant(), project, since_ms, limit.clamp(1, 1000))
            .await?)
    }

    async fn open_over(&self, env: &EnvKey, now: i64) -> ConfigResult<Vec<(FreezeWindow, Opening)>> {
        let mut open = Vec::new();
        for (window, _) in self.repository.windows(&env.tenant, &env.project).await? {
            if !window.covers(&env.environment) {
                continue;
            }
            if let Some(opening) = window.open_at(now)? {
                open.push((window, opening));
            }
        }
        Ok(open)
    }

    async fn admit_now(&self, caller: Caller<'_>, env: &EnvKey, action: &str, resource: &str) -> ConfigResult<()> {
        let now = now_ms();
        let open = self.open_over(env, now).await?;
        let policy = match caller.change_request {
            Some(_) => None,
            None => self.repository.policy(env).await?,
        };
        if open.is_empty() && policy.is_none() {
            return Ok(());
        }
        let Some(reason) = caller.break_glass else {
            return Err(refusal(env, &open, policy.as_ref().map(|(policy, _)| policy)));
        };
        if !caller.principal.scopes.iter().any(|scope| scope == EMERGENCY_SCOPE) {
            return Err(ConfigError::Auth(switchyard_platform::auth::AuthError::Forbidden(
                format!("breaking the glass needs the `{EMERGENCY_SCOPE}` scope"),
            )));
        }
        check_length(BREAK_GLASS, reason, MAX_REASON)?;
        if reason.trim().is_empty() {
            return Err(ConfigError::invalid(BREAK_GLASS, "a reason"));
        }
        let used = BreakGlassUse {
            project: env.project.clone(),
            environment: env.environment.clone(),
            actor: caller.principal.subject.clone(),
            reason: reason.to_owned(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            windows: open.iter().map(|(window, _)| window.id.clone()).collect(),
            approval_bypassed: policy.is_some(),
            created_ms: now,
        };
        let audit = caller.audit("freeze.break_glass", resource, None, None);
        self.repository
            .record_break_glass(caller.tenant(), &used, &audit)
            .await?;
        let body = json!({
            "type": "break_glass",
            "project": used.project,
            "environment": used.environment,
            "actor": used.actor,
            "reason": used.reason,
            "action": used.action,
            "resource": used.resource,
            "windows": used.windows,
            "approvalBypassed": used.approval_bypassed,
            "timeMs": used.created_ms,
        });
        let key = format!("break-glass:{}:{}:{}", used.actor, used.resource, used.created_ms);
        let channel = format!("$deployments:{}", env.project);
        self.hooks.announce(&env.tenant, &channel, &key, &body, &[]).await;
        Ok(())
    }

    /// Sets an environment's approval policy (creates it when `etag` is empty); needs the
    /// admin role on the environment.
    pub async fn put_policy(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        policy: ApprovalPolicy,
        etag: &str,
    ) -> ConfigResult<(ApprovalPolicy, i64)> {
        let resource = format!("{}/approvalPolicy", env.resource());
        caller.require(Role::Admin, &env.resource())?;
        policy.validate()?;
        self.require_environment(env).await?;
        let expected = if etag.is_empty() { 0 } else { parse_etag(etag)? };
        let action = if expected == 0 {
            "approval_policy.create"
        } else {
            "approval_policy.update"
        };
        let audit = caller.audit(action, &resource, None, None);
        let version = self
            .repository
            .put_policy(env, &policy, expected, &audit)
            .await
            .map_err(|error| match error {
                StoreError::Duplicate => ConfigError::AlreadyExists(resource.clone()),
                StoreError::Conflict => ConfigError::Conflict(resource.clone()),
                other => other.into(),
            })?;
        Ok((policy, version))
    }

    /// The environment's policy; `None` when it is not protected.
    pub async fn policy(&self, caller: Caller<'_>, env: &EnvKey) -> ConfigResult<Option<(ApprovalPolicy, i64)>> {
        caller.require(Role::Viewer, &env.resource())?;
        self.require_environment(env).await?;
        Ok(self.repository.policy(env).await?)
    }

    /// The policy a change in `env` must meet, for change requests (no role check).
    pub async fn policy_of(&self, env: &EnvKey) -> ConfigResult<Option<ApprovalPolicy>> {
        Ok(self.repository.policy(env).await?.map(|(policy, _)| policy))
    }

    pub async fn delete_policy(&self, caller: Caller<'_>, env: &EnvKey) -> ConfigResult<()> {
        let resource = format!("{}/approvalPolicy", env.resource());
        caller.require(Role::Admin, &env.resource())?;
        let audit = caller.audit("approval_policy.delete", &resource, None, None);
        self.repository
            .delete_policy(env, &audit)
            .await
            .map_err(|error| match error {
                StoreError::Missing => ConfigError::NotFound(resource.clone()),
                other => other.into(),
            })
    }

    async fn require_environment(&self, env: &EnvKey) -> ConfigResult<()> {
        match self
            .repository
            .environment(&env.tenant, &env.project, &env.environment)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(ConfigError::NotFound(env.resource())),
        }
    }
}

/// Why a change may not happen now: the open windows, or the approvals it needs.
fn refusal(env: &EnvKey, open: &[(FreezeWindow, Opening)], policy: Option<&ApprovalPolicy>) -> ConfigError {
    if !open.is_empty() {
        let described: Vec<String> = open.iter().map(|(window, opening)| window.describe(*opening)).collect();
        return ConfigError::FailedPrecondition(format!(
            "{} is frozen by {}; a principal with the `{EMERGENCY_SCOPE}` scope may override it with a reason in \
             the {BREAK_GLASS} header",
            env.resource(),
            described.join(" and ")
        ));
    }
    let required = policy.map_or(1, |policy| policy.required);
    ConfigError::FailedPrecondition(format!(
        "{} is protected: changes need {required} approval(s). Propose it as a change request \
         (CreateChangeRequest, or `switchyard changes create`)",
        env.resource()
    ))
}

fn view(window: FreezeWindow, version: i64, now: i64) -> WindowView {
    WindowView {
        open_now: window.open_at(now).ok().flatten(),
        next: window.next_opening(now).ok().flatten(),
        window,
        version,
    }
}

impl<R: Repository + GovernanceRepository> Admission for Governance<R> {
    fn admit<'a>(
        &'a self,
        caller: Caller<'a>,
        env: &'a EnvKey,
        action: &'a str,
        resource: &'a str,
    ) -> BoxFuture<'a, ConfigResult<()>> {
        Box::pin(self.admit_now(caller, env, action, resource))
    }

    fn open_windows<'a>(&'a self, env: &'a EnvKey) -> BoxFuture<'a, ConfigResult<Vec<(FreezeWindow, Opening)>>> {
        Box::pin(self.open_over(env, now_ms()))
    }
}
