//! The driver: every replica runs one, and each deployment is driven by exactly one of them.
//!
//! A driver leases the deployments that need driving (queued or active) and whose lease has
//! expired, renews its leases on every tick, and moves each deployment along its schedule:
//! start it when its target is free, run the gates that are due, advance when a step's hold is
//! over. Every move is a transition that the store applies only if the deployment is still at
//! the revision the move was computed from *and* this driver still holds the lease. So when a
//! driver dies (kill -9) mid-step, either its transition committed (the next driver continues
//! after it) or it did not (the next driver makes it): no step is skipped or made twice. The
//! schedule is wall-clock times stored with the deployment, so a takeover never restarts a
//! step's hold or a bake.

use std::{sync::Arc, time::Duration};

use switchyard_platform::Shutdown;

use super::{
    Deployments, hooks,
    machine::{self, DRIVER},
    model::{Deployment, State},
    repository::DeploymentRepository,
};
use crate::biz::{
    error::{ConfigError, ConfigResult},
    governance::freeze::DuringFreeze,
    model::now_ms,
    repository::{Repository, StoreError},
};

/// Deployments one driver leases per tick.
const CLAIM_BATCH: i64 = 100;
/// Events announced per deployment per tick.
const ANNOUNCE_BATCH: i64 = 100;

impl<R: Repository + DeploymentRepository> Deployments<R> {
    /// Drives deployments as `owner` until shutdown, then hands its leases back so another
    /// replica takes over at once.
    pub async fn drive(self: Arc<Self>, owner: String, shutdown: Shutdown) {
        tokio::spawn(self.clone().announce(owner.clone(), shutdown.clone()));
        let tick = Duration::from_millis(self.settings.tick_ms.max(10));
        loop {
            self.drive_once(&owner).await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
                _ = self.wake.notified() => {}
            }
        }
        if let Err(error) = self.repository.release_leases(&owner).await {
            tracing::warn!(%error, "handing back deployment leases failed; they expire on their own");
        }
    }

    /// One pass: lease (or renew), then move every leased deployment as far as it may go now.
    pub async fn drive_once(&self, owner: &str) {
        let now = now_ms();
        let claimed = match self
            .repository
            .claim(owner, now, now + self.settings.lease_ms, CLAIM_BATCH)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "leasing deployments failed; retrying at the next tick");
                return;
            }
        };
        for deployment in claimed {
            let name = deployment.resource();
            match self.move_along(owner, deployment).await {
                Ok(()) => {}
                Err(ConfigError::Conflict(_)) => {
                    tracing::debug!(deployment = %name, "moved on elsewhere (an operation or a new driver)");
                }
                Err(error) => tracing::warn!(deployment = %name, %error, "driving a deployment failed"),
            }
        }
    }

    /// Announces, as `owner`, the events of its leased deployments that were not announced
    /// yet, until shutdown. It runs beside the schedule, so a slow webhook delays announcements,
    /// never a step or a rollback.
    async fn announce(self: Arc<Self>, owner: String, shutdown: Shutdown) {
        let tick = Duration::from_millis(self.settings.tick_ms.max(10));
        loop {
            match self.repository.pending_announcements(&owner, CLAIM_BATCH).await {
                Ok(pending) => {
                    for deployment in pending {
                        if let Err(error) = self.announce_pending(&owner, &deployment).await {
                            let name = deployment.resource();
                            tracing::warn!(deployment = %name, %error, "announcing deployment events failed; retrying");
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "listing deployment events to announce failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Announces a deployment's events not announced yet, in order, then records how far it got.
    async fn announce_pending(&self, owner: &str, deployment: &Deployment) -> ConfigResult<()> {
        let (env, number) = (&deployment.env, deployment.number);
        let events = self
            .repository
            .events(env, number, deployment.notified_sequence, ANNOUNCE_BATCH)
            .await?;
        let channel = hooks::channel(&env.project);
        for event in &events {
            let body = hooks::notice(deployment, event);
            let key = format!("{}#{}", deployment.resource(), event.sequence);
            self.hooks
                .announce(&env.tenant, &channel, &key, &body, &deployment.webhooks)
                .await;
        }
        if let Some(last) = events.last() {
            self.repository.mark_notified(deployment, last.sequence, owner).await?;
        }
        Ok(())
    }

    async fn move_along(&self, owner: &str, deployment: Deployment) -> ConfigResult<()> {
        match deployment.state {
            State::Queued => self.dequeue(owner, deployment).await,
            State::Validating => self.begin(owner, deployment).await,
            State::Deploying | State::Baking => self.check_and_advance(owner, deployment).await,
            _ => Ok(()),
        }
    }

    /// QUEUED → VALIDATING when no other deployment of the target is active, then on.
    async fn dequeue(&self, owner: &str, before: Deployment) -> ConfigResult<()> {
        let mut after = before.clone();
        let events = machine::dequeue(&mut after, now_ms());
        match self.write(&before, &mut after, &events, Some(owner), &[]).await {
            Ok(()) => self.begin(owner, after).await,
            Err(ConfigError::Storage(StoreError::Duplicate)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// VALIDATING → the first step: the release clients have now becomes the one the others
    /// keep, and the first share is served.
    async fn begin(&self, owner: &str, before: Deployment) -> ConfigResult<()> {
        if self.held_by_freeze(owner, &before).await? {
            return Ok(());
        }
        let mut after = before.clone();
        let current = self.delivery.current(&before.env, &before.target).await?;
        after.previous = current.served.release;
        let refusal = if after.previous == after.version {
            let reason = format!("release {} is already what clients are served", after.version);
            Some((DRIVER, reason))
        } else if before.pre_start_webhook.is_empty() {
            None
        } else {
            let request = hooks::pre_start_request(&after);
            let answer = self.hooks.ask(&before.pre_start_webhook, &request).await;
            hooks::verdict(answer).map(|reason| ("webhook:pre-start", reason))
        };
        let now = now_ms();
        let events = if let Some((actor, reason)) = refusal {
            machine::refuse(&mut after, now, actor, &reason)
        } else {
            let starter = before.created_by.clone();
            machine::start(&mut after, now, &starter)
        };
        self.write(&before, &mut after, &events, Some(owner), &[]).await?;
        if after.state.is_active() {
            return self.check_and_advance(owner, after).await;
        }
        Ok(())
    }

    /// Runs the gates that are due, then advances when the step may end.
    async fn check_and_advance(&self, owner: &str, mut before: Deployment) -> ConfigResult<()> {
        let now = now_ms();
        let due = machine::gates_due(&before, now);
        if !due.is_empty() {
            let mut after = before.clone();
            let mut events = Vec::new();
            for index in due {
                let outcome = self.probe(&before, index).await;
                events.extend(machine::record_check(&mut after, index, &outcome, now_ms()));
                if !matches!(after.state, State::Deploying | State::Baking) {
                    break;
                }
            }
            self.write(&before, &mut after, &events, Some(owner), &[]).await?;
            before = after;
        }
        let now = now_ms();
        if !machine::may_advance(&before, now) || self.held_by_freeze(owner, &before).await? {
            return Ok(());
        }
        let mut after = before.clone();
        let events = machine::advance(&mut after, now);
        self.write(&before, &mut after, &events, Some(owner), &[]).await
    }

    /// Whether a freeze window open over the deployment's environment keeps it from moving on:
    /// it waits (a `hold` window) or is paused for a human (a `pause` window). Gates keep
    /// running and rollbacks still happen; a deployment created by breaking the glass is not
    /// held.
    async fn held_by_freeze(&self, owner: &str, deployment: &Deployment) -> ConfigResult<bool> {
        if deployment.break_glass {
            return Ok(false);
        }
        let open = self.store.admission().open_windows(&deployment.env).await?;
        let Some((window, opening)) = open.first() else {
            return Ok(false);
        };
        let pausing = open.iter().find(|(window, _)| window.during == DuringFreeze::Pause);
        let mut after = deployment.clone();
        let events = match (pausing, deployment.state) {
            (Some((window, opening)), State::Deploying | State::Baking) => {
                let reason = format!("paused by {}", window.describe(*opening));
                machine::pause(&mut after, now_ms(), &format!("freeze:{}", window.id), &reason)?
            }
            _ => {
                let reason = format!("held by {}", window.describe(*opening));
                machine::hold(&mut after, now_ms(), &format!("freeze:{}", window.id), &reason)
            }
        };
        if !events.is_empty() {
            self.write(deployment, &mut after, &events, Some(owner), &[]).await?;
        }
        Ok(true)
    }
}
