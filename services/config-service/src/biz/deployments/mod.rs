//! Progressive delivery: a deployment moves a config's clients from the release they are
//! served to a new one, a growing share at a time (bucketed by each client's stable id), with
//! health gates checked at every step and during a final bake, and rolls itself back when a
//! gate fails. One replica drives each deployment under a lease in the database (see
//! [`driver`]); every transition is one transaction (see [`repository::Transition`]).
//!
//! The use cases here are what people do: create, pause, resume, promote, stop, revert, read;
//! and what clients do: report their health.

pub mod driver;
pub mod gates;
pub mod hooks;
pub mod machine;
pub mod model;
pub mod probe;
pub mod repository;
mod strategies;
pub mod strategy;
pub mod threshold;

use std::sync::Arc;

use switchyard_platform::{audit::AuditEntry, auth::Role};
use tokio::sync::Notify;

use self::{
    gates::{Gate, HealthCounts, Tally},
    model::{Deployment, Event, EventKind, State, TargetKind},
    probe::MetricsSource,
    repository::{DeploymentFilter, DeploymentRepository, Serving, Transition},
    strategy::Strategy,
};
use super::{
    delivery::Delivery,
    error::{ConfigError, ConfigResult},
    input::check_length,
    model::{EnvKey, now_ms},
    repository::{Repository, StoreError},
    store::{Caller, ConfigStore},
    webhooks::{self, Hooks},
};

/// Tunables of deployments.
#[derive(Debug, Clone)]
pub struct DeploymentSettings {
    /// How long after completion a deployment may still be reverted at once.
    pub revert_window_ms: i64,
    /// How long a driver's lease lasts without renewal: the takeover time after a crash.
    pub lease_ms: i64,
    /// How often a driver looks at its deployments.
    pub tick_ms: u64,
}

impl Default for DeploymentSettings {
    fn default() -> Self {
        DeploymentSettings {
            revert_window_ms: 72 * 3_600_000,
            lease_ms: 3000,
            tick_ms: 200,
        }
    }
}

/// What a caller asks to deploy.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub env: EnvKey,
    pub config: String,
    /// An existing release; 0 stages the current draft as a new release.
    pub release: i64,
    /// A predefined strategy's name or a strategy of the project.
    pub strategy: String,
    pub gates: Vec<Gate>,
    pub description: String,
    /// Empty for a random one.
    pub seed: String,
    /// Asked before the first step; empty for none.
    pub pre_start_webhook: String,
    /// Told of every event.
    pub webhooks: Vec<String>,
}

/// An operation on a running deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Pause,
    Resume,
    Promote,
    Stop,
    Revert,
}

#[derive(Debug)]
pub struct Deployments<R> {
    store: Arc<ConfigStore<R>>,
    repository: Arc<R>,
    delivery: Arc<Delivery<R>>,
    metrics: Arc<dyn MetricsSource>,
    hooks: Arc<dyn Hooks>,
    settings: DeploymentSettings,
    /// Wakes the local driver when a deployment was created or changed.
    wake: Arc<Notify>,
}

const MAX_DESCRIPTION: usize = 2000;

impl<R: Repository + DeploymentRepository> Deployments<R> {
    pub fn new(
        store: Arc<ConfigStore<R>>,
        repository: Arc<R>,
        metrics: Arc<dyn MetricsSource>,
        hooks: Arc<dyn Hooks>,
        settings: DeploymentSettings,
    ) -> Self {
        Deployments {
            delivery: store.delivery().clone(),
            store,
            repository,
            metrics,
            hooks,
            settings,
            wake: Arc::default(),
        }
    }

    pub fn settings(&self) -> &DeploymentSettings {
        &self.settings
    }

    /// A requested page size, bounded as every list of the service bounds it.
    pub fn page_size(&self, requested: i32) -> i64 {
        self.store.page_size(requested)
    }

    /// Queues a deployment of a config release; the driver starts it as soon as the config
    /// has no other active deployment in the environment.
    pub async fn create(&self, caller: Caller<'_>, request: NewDeployment) -> ConfigResult<Deployment> {
        let resource = format!("{}/configs/{}", request.env.resource(), request.config);
        caller.require(Role::Publisher, &resource)?;
        check_length("description", &request.description, MAX_DESCRIPTION)?;
        check_length("seed", &request.seed, 128)?;
        if request.gates.len() > gates::MAX_GATES {
            return Err(ConfigError::invalid(
                "gates",
                format!("at most {} gates", gates::MAX_GATES),
            ));
        }
        for (index, gate) in request.gates.iter().enumerate() {
            gate.validate(&format!("gates[{index}]"))?;
            if request.gates[..index].iter().any(|other| other.name == gate.name) {
                return Err(ConfigError::invalid(
                    &format!("gates[{index}].name"),
                    "gate names must be unique",
                ));
            }
        }
        if !request.pre_start_webhook.is_empty() {
            webhooks::check_url("pre_start_webhook", &request.pre_start_webhook)?;
        }
        if request.webhooks.len() > webhooks::MAX_WEBHOOKS {
            return Err(ConfigError::invalid(
                "notification_webhooks",
                format!("at most {} webhooks", webhooks::MAX_WEBHOOKS),
            ));
        }
        for (index, url) in request.webhooks.iter().enumerate() {
            webhooks::check_url(&format!("notification_webhooks[{index}]"), url)?;
        }
        let strategy = self
            .resolve_strategy(caller, &request.env.project, &request.strategy)
            .await?;
        self.store
            .admission()
            .admit(caller, &request.env, "deployment.create", &resource)
            .await?;
        let served = self
            .delivery
            .current(&request.env, &request.config)
            .await
            .map_err(|error| match error {
                ConfigError::NotFound(_) => ConfigError::FailedPrecondition(format!(
                    "{resource} is not published yet: publish its first release, then deploy the next ones"
                )),
                other => other,
            })?;
        let release = match request.release {
            0 => {
                let message = format!("staged for deployment: {}", request.description);
                self.store
                    .stage(caller, &request.env, &request.config, &message)
                    .await?
                    .number
            }
            number => {
                self.store.refuse_base(&request.env, &request.config).await?;
                self.repository
                    .release(&request.env, &request.config, number)
                    .await?
                    .ok_or_else(|| ConfigError::NotFound(format!("{resource}/releases/{number}")))?
                    .number
            }
        };
        let now = now_ms();
        let mut deployment = Deployment {
            env: request.env.clone(),
            number: 0,
            kind: TargetKind::Config,
            target: request.config.clone(),
            version: release,
            previous: served.served.release,
            strategy,
            tallies: vec![Tally::default(); request.gates.len()],
            gates: request.gates,
            seed: match request.seed.as_str() {
                "" => uuid::Uuid::new_v4().simple().to_string(),
                seed => seed.to_owned(),
            },
            state: State::Queued,
            step: 0,
            share: 0,
            step_started_ms: now,
            due_ms: None,
            paused_left_ms: None,
            reason: String::new(),
            description: request.description,
            created_by: caller.principal.subject.clone(),
            created_ms: now,
            updated_ms: now,
            ended_ms: 0,
            revision: 1,
            pre_start_webhook: request.pre_start_webhook,
            webhooks: request.webhooks,
            break_glass: caller.break_glass.is_some(),
            event_sequence: 0,
            notified_sequence: 0,
        };
        let detail = format!("release {release} with {}", deployment.strategy.id);
        let events = vec![Event::new(
            EventKind::Queued,
            &deployment,
            &caller.principal.subject,
            detail,
        )];
        let audit = caller.audit("deployment.create", &resource, None, None);
        deployment = self.repository.create_deployment(&deployment, &events, &audit).await?;
        self.wake.notify_one();
        Ok(deployment)
    }

    pub async fn get(&self, caller: Caller<'_>, env: &EnvKey, number: i64) -> ConfigResult<Deployment> {
        caller.require(Role::Viewer, &env.resource())?;
        self.load(env, number).await
    }

    pub async fn list(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        filter: &DeploymentFilter,
    ) -> ConfigResult<Vec<Deployment>> {
        caller.require(Role::Viewer, &env.resource())?;
        let filter = DeploymentFilter {
            limit: self.store.page_size(i32::try_from(filter.limit).unwrap_or(0)),
            ..filter.clone()
        };
        Ok(self.repository.list_deployments(env, &filter).await?)
    }

    /// The deployment's events after `after`, oldest first.
    pub async fn events(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        number: i64,
        after: i64,
        limit: i32,
    ) -> ConfigResult<Vec<Event>> {
        caller.require(Role::Viewer, &env.resource())?;
        self.load(env, number).await?;
        Ok(self
            .repository
            .events(env, number, after, self.store.page_size(limit))
            .await?)
    }

    /// Pause, resume, promote, stop or revert, by a person.
    pub async fn operate(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        number: i64,
        operation: Operation,
        reason: &str,
    ) -> ConfigResult<Deployment> {
        check_length("reason", reason, MAX_DESCRIPTION)?;
        let before = self.load(env, number).await?;
        caller.require(Role::Publisher, &before.target_resource())?;
        let actor = caller.principal.subject.as_str();
        let now = now_ms();
        let mut after = before.clone();
        let events = match operation {
            Operation::Pause => machine::pause(&mut after, now, actor, reason)?,
            Operation::Resume => machine::resume(&mut after, now, actor)?,
            Operation::Promote => machine::promote(&mut after, now, actor)?,
            Operation::Stop => {
                let reason = if reason.is_empty() { "stopped by hand" } else { reason };
                machine::roll_back(&mut after, now, actor, reason)?
            }
            Operation::Revert => machine::revert(&mut after, now, actor, self.settings.revert_window_ms)?,
        };
        let action = format!("deployment.{}", operation_name(operation));
        let audit = vec![caller.audit(&action, &before.resource(), None, None)];
        self.write(&before, &mut after, &events, None, &audit).await?;
        self.wake.notify_one();
        Ok(after)
    }

    /// Adds what a client saw running a version of a config.
    pub async fn report_health(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        config: &str,
        release: i64,
        counts: HealthCounts,
    ) -> ConfigResult<()> {
        let resource = format!("{}/configs/{config}", env.resource());
        // Services report with the environment's SDK server key as often as with a viewer's.
        caller.require(Role::SdkServer, &resource)?;
        if release <= 0 {
            return Err(ConfigError::invalid("release", "the release number the client runs"));
        }
        const MAX_COUNT: u64 = 1 << 40;
        if counts.ok > MAX_COUNT || counts.errors > MAX_COUNT {
            return Err(ConfigError::invalid("ok_count", "at most 2^40 per report"));
        }
        self.store.environment_of(env).await?;
        let at = now_ms();
        self.repository
            .add_health(env, TargetKind::Config, config, release, at, counts)
            .await?;
        Ok(())
    }

    async fn load(&self, env: &EnvKey, number: i64) -> ConfigResult<Deployment> {
        self.repository
            .deployment(env, number)
            .await?
            .ok_or_else(|| ConfigError::NotFound(format!("{}/deployments/{number}", env.resource())))
    }

    /// Stores a transition computed from `before`, serves what it changed, and tells the
    /// replica's watchers. `owner` is the driver's lease, when the driver writes.
    async fn write(
        &self,
        before: &Deployment,
        after: &mut Deployment,
        events: &[Event],
        owner: Option<&str>,
        audit: &[AuditEntry],
    ) -> ConfigResult<()> {
        after.revision = before.revision + 1;
        let serving = match serving_change(before, after) {
            Some(Serving::Share(share)) => Some(Serving::Share(self.threshold(after, share).await?)),
            other => other,
        };
        let transition = Transition {
            from_revision: before.revision,
            deployment: after,
            lease_owner: owner,
            serving,
            events,
            audit,
            retain_changes: self.delivery.retain(),
        };
        let served = self
            .repository
            .transition(&transition)
            .await
            .map_err(|error| match error {
                StoreError::Conflict => ConfigError::Conflict(before.resource()),
                other => other.into(),
            })?;
        if let Some(row) = served {
            self.delivery.applied(&after.env, vec![row]).await;
        }
        Ok(())
    }
}

/// How far back a client's sighting counts towards the fleet a step is measured against.
const SIGHTING_WINDOW_MS: i64 = 24 * 3_600_000;
/// The most sightings read to set a threshold.
const MAX_FLEET: i64 = 1_000_000;

impl<R: Repository + DeploymentRepository> Deployments<R> {
    /// The bucket threshold that serves `share` of the config's known clients (see
    /// [`threshold`]), never below the one served now.
    async fn threshold(&self, deployment: &Deployment, share: u32) -> ConfigResult<u32> {
        let floor = match self.delivery.current(&deployment.env, &deployment.target).await {
            Ok(entry) => entry.candidate.as_ref().map_or(0, |candidate| candidate.share),
            Err(ConfigError::NotFound(_)) => 0,
            Err(other) => return Err(other),
        };
        let since = now_ms() - SIGHTING_WINDOW_MS;
        let clients = self
            .repository
            .sighted_clients(&deployment.env, &deployment.target, since, MAX_FLEET)
            .await?;
        Ok(threshold::calibrated(share, &deployment.seed, &clients, floor))
    }
}

/// What clients must be served after a transition from `before` to `after`.
fn serving_change(before: &Deployment, after: &Deployment) -> Option<Serving> {
    let served_before = before.share > 0;
    match after.state {
        State::Complete if before.state != State::Complete => Some(Serving::Release(after.version)),
        State::RolledBack if served_before => Some(Serving::Stable),
        State::Reverted => Some(Serving::Release(after.previous)),
        State::Deploying | State::Paused | State::Baking if after.share != before.share => {
            Some(Serving::Share(after.share))
        }
        _ => None,
    }
}

fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::Pause => "pause",
        Operation::Resume => "resume",
        Operation::Promote => "promote",
        Operation::Stop => "stop",
        Operation::Revert => "revert",
    }
}

/// Strategies are resolved when a deployment is created and copied into it, so editing a
/// strategy never changes a deployment already running.
impl<R: Repository + DeploymentRepository> Deployments<R> {
    async fn resolve_strategy(&self, caller: Caller<'_>, project: &str, name: &str) -> ConfigResult<Strategy> {
        if name.is_empty() {
            return Err(ConfigError::invalid(
                "strategy",
                "a predefined strategy (AllAtOnce, Linear50PercentEvery30Seconds, …) or one of the project's",
            ));
        }
        if let Some(predefined) = strategy::find_predefined(name) {
            return Ok(predefined);
        }
        let (found, _) = self
            .repository
            .strategy(caller.tenant(), project, name)
            .await?
            .ok_or_else(|| ConfigError::NotFound(format!("projects/{project}/strategies/{name}")))?;
        Ok(found)
    }
}
