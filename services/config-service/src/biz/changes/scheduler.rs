//! Applies scheduled changes when their time comes, on behalf of whoever scheduled them.
//!
//! Every replica runs the scheduler. A due change is claimed by a conditional update (only
//! one replica's claim wins), then applied. A replica that dies after applying but before
//! recording it leaves the claim behind; the next claim finds the config already moved past
//! the change's base and records the change as applied instead of applying it twice. A change
//! due while a freeze window is open waits for the window to close.

use std::{sync::Arc, time::Duration};

use switchyard_platform::{
    Shutdown,
    auth::{Credential, Principal, Role, RoleBinding},
};

use super::{Changes, model::ChangeRequest, repository::ChangeRepository};
use crate::biz::{
    deployments::repository::DeploymentRepository,
    error::ConfigError,
    governance::repository::GovernanceRepository,
    model::now_ms,
    repository::{Repository, StoreError},
    store::Caller,
};

/// What `outcome` says while a replica applies a claimed change.
const APPLYING: &str = "applying";
/// Changes looked at per pass.
const BATCH: i64 = 50;

impl<R> Changes<R>
where
    R: Repository + DeploymentRepository + GovernanceRepository + ChangeRepository,
{
    /// Runs until shutdown, looking for due changes every `interval`.
    pub async fn run_scheduler(self: Arc<Self>, interval: Duration, shutdown: Shutdown) {
        loop {
            self.apply_due().await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One pass: every due change is claimed and applied.
    pub async fn apply_due(&self) {
        let due = match self.repository.due_changes(now_ms(), BATCH).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "listing scheduled changes failed");
                return;
            }
        };
        for change in due {
            let name = change.resource();
            if let Err(error) = self.apply_scheduled(change).await {
                tracing::warn!(change = %name, %error, "applying a scheduled change failed");
            }
        }
    }

    async fn apply_scheduled(&self, due: ChangeRequest) -> Result<(), ConfigError> {
        let principal = scheduler_principal(&due);
        let caller = Caller {
            principal: &principal,
            request_id: None,
            break_glass: None,
            change_request: None,
        };
        let interrupted = due.outcome == APPLYING;
        let mut claimed = due.clone();
        claimed.outcome = APPLYING.to_owned();
        let claimed = match self.save(caller, &due, claimed, "change_request.claim").await {
            Ok(claimed) => claimed,
            Err(ConfigError::Conflict(_)) => return Ok(()),
            Err(error) => return Err(error),
        };
        if interrupted && self.conflict(caller, &claimed).await?.is_some() {
            let mut recovered = claimed.clone();
            let outcome = "applied by an earlier attempt that stopped before recording it";
            recovered.applied(outcome, now_ms());
            self.save(caller, &claimed, recovered, "change_request.apply").await?;
            return Ok(());
        }
        match self.apply_loaded(caller, claimed.clone()).await {
            Ok(_) => Ok(()),
            Err(ConfigError::FailedPrecondition(reason)) if reason.contains("frozen by") => {
                // A freeze window is open: wait for it to close, as a deployment step would.
                let mut waiting = claimed.clone();
                waiting.outcome = format!("waiting: {reason}");
                self.save(caller, &claimed, waiting, "change_request.wait").await?;
                Ok(())
            }
            Err(error) => {
                let current = self.load(&claimed.env, claimed.number).await?;
                if current.revision != claimed.revision {
                    return Err(error);
                }
                let mut failed = current.clone();
                failed.schedule_failed(&error.to_string(), now_ms());
                self.save(caller, &current, failed, "change_request.schedule_failed")
                    .await
                    .map_err(|_| ConfigError::Storage(StoreError::Conflict))?;
                Err(error)
            }
        }
    }
}

/// Who a scheduled change is applied as: the person who scheduled it, by the scheduler, with
/// the publisher role on the change's config in its environment and the viewer role on the
/// config's draft, nothing more.
fn scheduler_principal(change: &ChangeRequest) -> Principal {
    Principal {
        subject: format!("scheduler:{}", change.scheduled_by),
        tenant: change.env.tenant.clone(),
        roles: vec![
            RoleBinding {
                role: Role::Publisher,
                resource: Some(change.target_resource()),
            },
            RoleBinding {
                role: Role::Viewer,
                resource: Some(format!("projects/{}/configs/{}", change.env.project, change.config)),
            },
        ],
        scopes: Vec::new(),
        credential: Credential::ApiKey,
    }
}
