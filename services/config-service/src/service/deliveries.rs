//! The gRPC face of progressive delivery (`switchyard.config.v1.DeliveryService`): maps
//! requests to `biz::deployments` and back.

use std::{sync::Arc, time::Duration};

use switchyard_api::config::v1::{self as pb, delivery_service_server::DeliveryService};
use switchyard_platform::{Shutdown, auth::Principal, shutdown::end_on_shutdown};
use tonic::{Request, Response, Status};

use super::{
    BoxStream, caller,
    delivery_convert::{self as convert, gate_of, strategy_of},
    requests::{env_key, next_token, numeric_position, page_size, project_ref},
    status,
};
use crate::{
    biz::{
        deployments::{
            Deployments, NewDeployment, Operation,
            gates::HealthCounts,
            model::{Deployment, Event, TargetKind},
            repository::DeploymentFilter,
        },
        error::{ConfigError, ConfigResult},
        model::EnvKey,
        names::parse,
        store::Caller,
    },
    data::SqlRepository,
};

/// How often a deployment watch looks for news.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// Implements `switchyard.config.v1.DeliveryService`.
#[derive(Debug, Clone)]
pub struct DeliveryServiceApi {
    deployments: Arc<Deployments<SqlRepository>>,
    shutdown: Shutdown,
}

impl DeliveryServiceApi {
    pub fn new(deployments: Arc<Deployments<SqlRepository>>, shutdown: Shutdown) -> Self {
        Self { deployments, shutdown }
    }
}

fn strategy_ref(field: &str, name: &str) -> ConfigResult<(String, String)> {
    let ids = parse(field, name, "projects/*/strategies/*")?;
    Ok((ids[0].clone(), ids[1].clone()))
}

fn deployment_ref(caller: &Caller<'_>, field: &str, name: &str) -> ConfigResult<(EnvKey, i64)> {
    let ids = parse(field, name, "projects/*/environments/*/deployments/*")?;
    let number = ids[2]
        .parse::<i64>()
        .ok()
        .filter(|number| *number > 0)
        .ok_or_else(|| ConfigError::invalid(field, "the deployment number must be a positive integer"))?;
    Ok((EnvKey::new(caller.tenant(), &ids[0], &ids[1]), number))
}

fn release_number(field: &str, release: u64) -> ConfigResult<i64> {
    i64::try_from(release).map_err(|_| ConfigError::invalid(field, "too large"))
}

impl DeliveryServiceApi {
    async fn operate(
        &self,
        request: Request<pb::OperateDeploymentRequest>,
        operation: Operation,
    ) -> Result<Response<pb::Deployment>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, number) = deployment_ref(&caller, "name", &body.name).map_err(status)?;
        let deployment = self
            .deployments
            .operate(caller, &env, number, operation, &body.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::deployment(&deployment)))
    }
}

#[tonic::async_trait]
impl DeliveryService for DeliveryServiceApi {
    async fn list_strategies(
        &self,
        request: Request<pb::ListStrategiesRequest>,
    ) -> Result<Response<pb::ListStrategiesResponse>, Status> {
        let caller = caller(&request)?;
        let project = project_ref("parent", &request.get_ref().parent).map_err(status)?;
        let strategies = self.deployments.strategies(caller, &project).await.map_err(status)?;
        let strategies = strategies
            .iter()
            .map(|strategy| convert::strategy(&project, strategy, 0))
            .collect();
        Ok(Response::new(pb::ListStrategiesResponse { strategies }))
    }

    async fn get_strategy(&self, request: Request<pb::GetStrategyRequest>) -> Result<Response<pb::Strategy>, Status> {
        let caller = caller(&request)?;
        let (project, id) = strategy_ref("name", &request.get_ref().name).map_err(status)?;
        let (strategy, version) = self.deployments.strategy(caller, &project, &id).await.map_err(status)?;
        Ok(Response::new(convert::strategy(&project, &strategy, version)))
    }

    async fn create_strategy(
        &self,
        request: Request<pb::CreateStrategyRequest>,
    ) -> Result<Response<pb::Strategy>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let project = project_ref("parent", &body.parent).map_err(status)?;
        let message = body.strategy.clone().unwrap_or_default();
        let strategy = strategy_of(&body.strategy_id, &message).map_err(status)?;
        let (strategy, version) = self
            .deployments
            .put_strategy(caller, &project, strategy, "")
            .await
            .map_err(status)?;
        Ok(Response::new(convert::strategy(&project, &strategy, version)))
    }

    async fn update_strategy(
        &self,
        request: Request<pb::UpdateStrategyRequest>,
    ) -> Result<Response<pb::Strategy>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref().strategy.clone().unwrap_or_default();
        let (project, id) = strategy_ref("strategy.name", &message.name).map_err(status)?;
        if message.etag.is_empty() {
            return Err(status(ConfigError::invalid(
                "strategy.etag",
                "required: the etag from the last read",
            )));
        }
        let strategy = strategy_of(&id, &message).map_err(status)?;
        let (strategy, version) = self
            .deployments
            .put_strategy(caller, &project, strategy, &message.etag)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::strategy(&project, &strategy, version)))
    }

    async fn delete_strategy(
        &self,
        request: Request<pb::DeleteStrategyRequest>,
    ) -> Result<Response<pbjson_types::Empty>, Status> {
        let caller = caller(&request)?;
        let (project, id) = strategy_ref("name", &request.get_ref().name).map_err(status)?;
        self.deployments
            .delete_strategy(caller, &project, &id)
            .await
            .map_err(status)?;
        Ok(Response::new(pbjson_types::Empty {}))
    }

    async fn create_deployment(
        &self,
        request: Request<pb::CreateDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let env = env_key(&caller, "parent", &body.parent).map_err(status)?;
        let message = body.deployment.clone().unwrap_or_default();
        if message.config.is_empty() {
            return Err(status(ConfigError::invalid(
                "deployment.config",
                "required: the config id",
            )));
        }
        let gates = message
            .gates
            .iter()
            .enumerate()
            .map(|(index, gate)| gate_of(index, gate))
            .collect::<ConfigResult<Vec<_>>>()
            .map_err(status)?;
        let request = NewDeployment {
            env,
            config: message.config,
            release: release_number("deployment.release", message.release).map_err(status)?,
            strategy: message.strategy,
            gates,
            description: message.description,
            seed: message.seed,
            pre_start_webhook: message.pre_start_webhook,
            webhooks: message.notification_webhooks,
        };
        let deployment = self.deployments.create(caller, request).await.map_err(status)?;
        Ok(Response::new(convert::deployment(&deployment)))
    }

    async fn get_deployment(
        &self,
        request: Request<pb::GetDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        let caller = caller(&request)?;
        let (env, number) = deployment_ref(&caller, "name", &request.get_ref().name).map_err(status)?;
        let deployment = self.deployments.get(caller, &env, number).await.map_err(status)?;
        Ok(Response::new(convert::deployment(&deployment)))
    }

    async fn list_deployments(
        &self,
        request: Request<pb::ListDeploymentsRequest>,
    ) -> Result<Response<pb::ListDeploymentsResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let env = env_key(&caller, "parent", &body.parent).map_err(status)?;
        let requested = page_size(body.page_size).map_err(status)?;
        let filter = DeploymentFilter {
            target: (!body.config.is_empty()).then(|| (TargetKind::Config, body.config.clone())),
            before: numeric_position(&body.page_token).map_err(status)?.unwrap_or(0),
            limit: i64::from(requested),
        };
        let found = self.deployments.list(caller, &env, &filter).await.map_err(status)?;
        let full = found.len() as i64 >= self.deployments.page_size(requested);
        let last = found
            .last()
            .map(|deployment: &Deployment| deployment.number.to_string());
        Ok(Response::new(pb::ListDeploymentsResponse {
            deployments: found.iter().map(convert::deployment).collect(),
            next_page_token: next_token(full, last),
        }))
    }

    async fn list_deployment_events(
        &self,
        request: Request<pb::ListDeploymentEventsRequest>,
    ) -> Result<Response<pb::ListDeploymentEventsResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, number) = deployment_ref(&caller, "parent", &body.parent).map_err(status)?;
        let after = release_number("after_sequence", body.after_sequence).map_err(status)?;
        let requested = page_size(body.page_size).map_err(status)?;
        let events = self
            .deployments
            .events(caller, &env, number, after, requested)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListDeploymentEventsResponse {
            events: events.iter().map(convert::event).collect(),
        }))
    }

    type WatchDeploymentStream = BoxStream<pb::DeploymentUpdate>;

    async fn watch_deployment(
        &self,
        request: Request<pb::WatchDeploymentRequest>,
    ) -> Result<Response<Self::WatchDeploymentStream>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, number) = deployment_ref(&caller, "name", &body.name).map_err(status)?;
        let after = release_number("after_sequence", body.after_sequence).map_err(status)?;
        let first = self.deployments.get(caller, &env, number).await.map_err(status)?;
        let watch = DeploymentWatch {
            deployments: self.deployments.clone(),
            principal: caller.principal.clone(),
            env,
            number,
            after,
            known: Some(first),
            done: false,
        };
        let updates = futures::stream::unfold(watch, |mut watch| async move {
            let update = watch.next().await?;
            Some((update, watch))
        });
        Ok(Response::new(Box::pin(end_on_shutdown(updates, self.shutdown.clone()))))
    }

    async fn pause_deployment(
        &self,
        request: Request<pb::OperateDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        self.operate(request, Operation::Pause).await
    }

    async fn resume_deployment(
        &self,
        request: Request<pb::OperateDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        self.operate(request, Operation::Resume).await
    }

    async fn promote_deployment(
        &self,
        request: Request<pb::OperateDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        self.operate(request, Operation::Promote).await
    }

    async fn stop_deployment(
        &self,
        request: Request<pb::OperateDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        self.operate(request, Operation::Stop).await
    }

    async fn revert_deployment(
        &self,
        request: Request<pb::OperateDeploymentRequest>,
    ) -> Result<Response<pb::Deployment>, Status> {
        self.operate(request, Operation::Revert).await
    }

    async fn report_health(
        &self,
        request: Request<pb::ReportHealthRequest>,
    ) -> Result<Response<pb::ReportHealthResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let (env, config) = super::requests::published(&caller, "config", &body.config).map_err(status)?;
        let release = release_number("release", body.release).map_err(status)?;
        let counts = HealthCounts {
            ok: body.ok_count,
            errors: body.error_count,
        };
        self.deployments
            .report_health(caller, &env, &config, release, counts)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReportHealthResponse {}))
    }
}

/// One `WatchDeployment` stream: the deployment with its new events whenever there are some,
/// until it ends. It reads the database, so it follows a deployment driven by any replica.
struct DeploymentWatch {
    deployments: Arc<Deployments<SqlRepository>>,
    principal: Principal,
    env: EnvKey,
    number: i64,
    /// The last event sent.
    after: i64,
    /// The deployment as read before the first update.
    known: Option<Deployment>,
    done: bool,
}

impl DeploymentWatch {
    async fn next(&mut self) -> Option<Result<pb::DeploymentUpdate, Status>> {
        if self.done {
            return None;
        }
        let first = self.after == 0;
        loop {
            let update = self.read().await;
            match update {
                Err(error) => {
                    self.done = true;
                    return Some(Err(status(error)));
                }
                Ok((current, events)) => {
                    self.done = current.state.is_final();
                    if first || self.done || !events.is_empty() {
                        self.after = events.last().map_or(self.after.max(1), |event| event.sequence);
                        return Some(Ok(pb::DeploymentUpdate {
                            deployment: Some(convert::deployment(&current)),
                            events: events.iter().map(convert::event).collect(),
                        }));
                    }
                }
            }
            tokio::time::sleep(WATCH_INTERVAL).await;
        }
    }

    async fn read(&mut self) -> ConfigResult<(Deployment, Vec<Event>)> {
        let caller = Caller {
            principal: &self.principal,
            request_id: None,
            break_glass: None,
            change_request: None,
        };
        let current = match self.known.take() {
            Some(current) => current,
            None => self.deployments.get(caller, &self.env, self.number).await?,
        };
        let events = self
            .deployments
            .events(caller, &self.env, self.number, self.after, 1000)
            .await?;
        Ok((current, events))
    }
}
