//! The gRPC face of experiment-service: maps protobuf requests to use cases and errors to
//! statuses, nothing else.

mod ingest;
mod layers;
mod mapping;
mod results;
mod watch;

use std::sync::Arc;

use switchyard_api::{
    experiments::v1::{self as pb, experiment_service_server::ExperimentService},
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{
    about::About,
    auth::{ACT_FOR_TENANT_HEADER, Principal},
    clock::now_ms,
    error::{FieldViolation, to_status},
    names::parse_name,
    proto_json::from_proto_struct,
};
use tonic::{Request, Response, Status};

use crate::{
    biz::{
        error::ExperimentError,
        ingest::Ingestion,
        management::{Caller, ExperimentChange, Manager, PageRequest},
    },
    data::{flags::GrpcFlags, repository::SqlRepository},
};

pub type ExperimentManager = Manager<SqlRepository, GrpcFlags>;
pub type EventIngestion = Ingestion<SqlRepository>;

/// Implements `switchyard.experiments.v1.ExperimentService`.
#[derive(Debug, Clone)]
pub struct ExperimentServiceApi {
    about: About,
    manager: Arc<ExperimentManager>,
    ingestion: Arc<EventIngestion>,
    /// The aggregator's fold count: result watchers look again when it moves.
    folds: tokio::sync::watch::Receiver<u64>,
}

impl ExperimentServiceApi {
    pub fn new(
        about: About,
        manager: Arc<ExperimentManager>,
        ingestion: Arc<EventIngestion>,
        folds: tokio::sync::watch::Receiver<u64>,
    ) -> Self {
        Self {
            about,
            manager,
            ingestion,
            folds,
        }
    }
}

fn status(error: ExperimentError) -> Status {
    to_status(&error)
}

fn invalid(violations: Vec<FieldViolation>) -> Status {
    status(ExperimentError::Invalid(violations))
}

fn caller<T>(request: &Request<T>) -> Result<Caller<'_>, Status> {
    let principal = Principal::of(request).map_err(|error| status(error.into()))?;
    let request_id = request
        .metadata()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok());
    let authorization = request
        .metadata()
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    // The services' shared credential acting for a tenant passes that on too.
    let act_for_tenant = request
        .metadata()
        .get(ACT_FOR_TENANT_HEADER)
        .and_then(|value| value.to_str().ok());
    Ok(Caller {
        principal,
        request_id,
        authorization,
        act_for_tenant,
    })
}

/// The ids in a resource name, or INVALID_ARGUMENT naming the field.
fn ids(field: &str, name: &str, pattern: &str) -> Result<Vec<String>, Status> {
    parse_name(field, name, pattern).map_err(|violation| invalid(vec![violation]))
}

fn project_of(parent: &str) -> Result<String, Status> {
    Ok(ids("parent", parent, "projects/*")?.remove(0))
}

/// (project, key) of a `projects/*/{collection}/*` name.
fn project_and_key(field: &str, name: &str, collection: &str) -> Result<(String, String), Status> {
    let mut parts = ids(field, name, &format!("projects/*/{collection}/*"))?;
    let key = parts.remove(1);
    Ok((parts.remove(0), key))
}

fn metric_name(field: &str, name: &str) -> Result<(String, String), Status> {
    project_and_key(field, name, "metrics")
}

fn experiment_name(field: &str, name: &str) -> Result<(String, String), Status> {
    project_and_key(field, name, "experiments")
}

/// A requested phase: 0 means the latest.
fn phase_of(phase: i32) -> Result<Option<u32>, Status> {
    match phase {
        0 => Ok(None),
        number => u32::try_from(number)
            .map(Some)
            .map_err(|_| invalid(vec![FieldViolation::new("phase", "0 (the latest) or a phase number")])),
    }
}

fn etag(field: &str, text: &str) -> Result<Option<i64>, Status> {
    mapping::etag_from(field, text).map_err(|violation| invalid(vec![violation]))
}

#[tonic::async_trait]
impl ExperimentService for ExperimentServiceApi {
    async fn get_service_info(
        &self,
        _request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let info = self.about.service_info().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(info))
    }

    async fn create_layer(&self, request: Request<pb::CreateLayerRequest>) -> Result<Response<pb::Layer>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = project_of(&message.parent)?;
        let layer = layers::layer_from(message.layer.clone().unwrap_or_default());
        let view = self
            .manager
            .create_layer(caller, &project, &message.layer_id, layer)
            .await
            .map_err(status)?;
        Ok(Response::new(layers::layer_to(&project, &view)))
    }

    async fn get_layer(&self, request: Request<pb::GetLayerRequest>) -> Result<Response<pb::Layer>, Status> {
        let caller = caller(&request)?;
        let (project, key) = project_and_key("name", &request.get_ref().name, "layers")?;
        let view = self.manager.layer(caller, &project, &key).await.map_err(status)?;
        Ok(Response::new(layers::layer_to(&project, &view)))
    }

    async fn list_layers(
        &self,
        request: Request<pb::ListLayersRequest>,
    ) -> Result<Response<pb::ListLayersResponse>, Status> {
        let caller = caller(&request)?;
        let project = project_of(&request.get_ref().parent)?;
        let views = self.manager.layers(caller, &project).await.map_err(status)?;
        Ok(Response::new(pb::ListLayersResponse {
            layers: views.iter().map(|view| layers::layer_to(&project, view)).collect(),
        }))
    }

    async fn create_holdout(
        &self,
        request: Request<pb::CreateHoldoutRequest>,
    ) -> Result<Response<pb::Holdout>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = project_of(&message.parent)?;
        let holdout = layers::holdout_from(message.holdout.clone().unwrap_or_default());
        let view = self
            .manager
            .create_holdout(caller, &project, &message.holdout_id, holdout)
            .await
            .map_err(status)?;
        Ok(Response::new(layers::holdout_to(&project, &view)))
    }

    async fn get_holdout(&self, request: Request<pb::GetHoldoutRequest>) -> Result<Response<pb::Holdout>, Status> {
        let caller = caller(&request)?;
        let (project, key) = project_and_key("name", &request.get_ref().name, "holdouts")?;
        let view = self.manager.holdout(caller, &project, &key).await.map_err(status)?;
        Ok(Response::new(layers::holdout_to(&project, &view)))
    }

    async fn get_holdout_results(
        &self,
        request: Request<pb::GetHoldoutResultsRequest>,
    ) -> Result<Response<pb::Results>, Status> {
        let caller = caller(&request)?;
        let (project, key) = project_and_key("name", &request.get_ref().name, "holdouts")?;
        let results = self
            .manager
            .holdout_results(caller, &project, &key)
            .await
            .map_err(status)?;
        let mut answer = results::results_to(&project, &key, &results);
        answer.experiment = format!("projects/{project}/holdouts/{key}");
        Ok(Response::new(answer))
    }

    async fn list_holdouts(
        &self,
        request: Request<pb::ListHoldoutsRequest>,
    ) -> Result<Response<pb::ListHoldoutsResponse>, Status> {
        let caller = caller(&request)?;
        let project = project_of(&request.get_ref().parent)?;
        let views = self.manager.holdouts(caller, &project).await.map_err(status)?;
        Ok(Response::new(pb::ListHoldoutsResponse {
            holdouts: views.iter().map(|view| layers::holdout_to(&project, view)).collect(),
        }))
    }

    async fn create_metric(&self, request: Request<pb::CreateMetricRequest>) -> Result<Response<pb::Metric>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = project_of(&message.parent)?;
        let definition = mapping::metric_from(message.metric.clone().unwrap_or_default()).map_err(invalid)?;
        let stored = self
            .manager
            .create_metric(caller, &project, &message.metric_id, definition)
            .await
            .map_err(status)?;
        Ok(Response::new(mapping::metric_to(&project, &stored)))
    }

    async fn get_metric(&self, request: Request<pb::GetMetricRequest>) -> Result<Response<pb::Metric>, Status> {
        let caller = caller(&request)?;
        let (project, key) = metric_name("name", &request.get_ref().name)?;
        let stored = self.manager.metric(caller, &project, &key).await.map_err(status)?;
        Ok(Response::new(mapping::metric_to(&project, &stored)))
    }

    async fn list_metrics(
        &self,
        request: Request<pb::ListMetricsRequest>,
    ) -> Result<Response<pb::ListMetricsResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = project_of(&message.parent)?;
        let page = PageRequest {
            size: message.page_size,
            token: &message.page_token,
        };
        let page = self.manager.metrics(caller, &project, page).await.map_err(status)?;
        Ok(Response::new(pb::ListMetricsResponse {
            metrics: page
                .items
                .iter()
                .map(|metric| mapping::metric_to(&project, metric))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_metric(&self, request: Request<pb::UpdateMetricRequest>) -> Result<Response<pb::Metric>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let metric = message.metric.clone().unwrap_or_default();
        let (project, key) = metric_name("metric.name", &metric.name)?;
        let etag = etag(
            "etag",
            if message.etag.is_empty() {
                &metric.etag
            } else {
                &message.etag
            },
        )?;
        let definition = mapping::metric_from(metric).map_err(invalid)?;
        let stored = self
            .manager
            .update_metric(caller, &project, &key, definition, etag)
            .await
            .map_err(status)?;
        Ok(Response::new(mapping::metric_to(&project, &stored)))
    }

    async fn create_experiment(
        &self,
        request: Request<pb::CreateExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = project_of(&message.parent)?;
        let spec = mapping::spec_from(message.experiment.clone().unwrap_or_default()).map_err(invalid)?;
        let stored = self
            .manager
            .create_experiment(caller, &project, &message.experiment_id, spec, "")
            .await
            .map_err(status)?;
        Ok(Response::new(mapping::experiment_to(&project, &stored)))
    }

    async fn get_experiment(
        &self,
        request: Request<pb::GetExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        let caller = caller(&request)?;
        let (project, key) = experiment_name("name", &request.get_ref().name)?;
        let stored = self.manager.experiment(caller, &project, &key).await.map_err(status)?;
        Ok(Response::new(mapping::experiment_to(&project, &stored)))
    }

    async fn list_experiments(
        &self,
        request: Request<pb::ListExperimentsRequest>,
    ) -> Result<Response<pb::ListExperimentsResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = project_of(&message.parent)?;
        let state = mapping::state_from(message.state).map_err(|violation| invalid(vec![violation]))?;
        let page = PageRequest {
            size: message.page_size,
            token: &message.page_token,
        };
        let page = self
            .manager
            .experiments(caller, &project, state, page)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListExperimentsResponse {
            experiments: page
                .items
                .iter()
                .map(|experiment| mapping::experiment_to(&project, experiment))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_experiment(
        &self,
        request: Request<pb::UpdateExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let experiment = message.experiment.clone().unwrap_or_default();
        let (project, key) = experiment_name("experiment.name", &experiment.name)?;
        let etag = etag(
            "etag",
            if message.etag.is_empty() {
                &experiment.etag
            } else {
                &message.etag
            },
        )?;
        let change = ExperimentChange {
            spec: mapping::spec_from(experiment).map_err(invalid)?,
            etag,
            reassign: message.reassign,
            message: message.message.clone(),
        };
        let stored = self
            .manager
            .update_experiment(caller, &project, &key, change)
            .await
            .map_err(status)?;
        Ok(Response::new(mapping::experiment_to(&project, &stored)))
    }

    async fn start_experiment(
        &self,
        request: Request<pb::StartExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let (project, key) = experiment_name("name", &message.name)?;
        let etag = etag("etag", &message.etag)?;
        let stored = self
            .manager
            .start(caller, &project, &key, etag, &message.message)
            .await
            .map_err(status)?;
        Ok(Response::new(mapping::experiment_to(&project, &stored)))
    }

    async fn stop_experiment(
        &self,
        request: Request<pb::StopExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let (project, key) = experiment_name("name", &message.name)?;
        let etag = etag("etag", &message.etag)?;
        let decision =
            mapping::decision_from(message.decision.clone()).map_err(|violation| invalid(vec![violation]))?;
        let stored = self
            .manager
            .stop(caller, &project, &key, etag, decision)
            .await
            .map_err(status)?;
        Ok(Response::new(mapping::experiment_to(&project, &stored)))
    }

    async fn archive_experiment(
        &self,
        request: Request<pb::ArchiveExperimentRequest>,
    ) -> Result<Response<pb::Experiment>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let (project, key) = experiment_name("name", &message.name)?;
        let etag = etag("etag", &message.etag)?;
        let stored = self
            .manager
            .archive(caller, &project, &key, etag, &message.message)
            .await
            .map_err(status)?;
        Ok(Response::new(mapping::experiment_to(&project, &stored)))
    }

    async fn list_experiment_versions(
        &self,
        request: Request<pb::ListExperimentVersionsRequest>,
    ) -> Result<Response<pb::ListExperimentVersionsResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let (project, key) = experiment_name("name", &message.name)?;
        let page = PageRequest {
            size: message.page_size,
            token: &message.page_token,
        };
        let page = self
            .manager
            .versions(caller, &project, &key, page)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListExperimentVersionsResponse {
            versions: page
                .items
                .iter()
                .map(|version| mapping::version_to(&project, &key, version))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn log_exposures(
        &self,
        request: Request<pb::LogExposuresRequest>,
    ) -> Result<Response<pb::LogResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = project_of(&message.parent)?;
        let exposures = message.exposures.iter().cloned().map(ingest::exposure_from).collect();
        let outcome = self
            .ingestion
            .log_exposures(caller, &project, exposures, now_ms())
            .await
            .map_err(ingest::status)?;
        Ok(Response::new(ingest::outcome_to(outcome)))
    }

    async fn log_events(&self, request: Request<pb::LogEventsRequest>) -> Result<Response<pb::LogResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let project = project_of(&message.parent)?;
        let events = message.events.iter().cloned().map(ingest::event_from).collect();
        let outcome = self
            .ingestion
            .log_events(caller, &project, events, now_ms())
            .await
            .map_err(ingest::status)?;
        Ok(Response::new(ingest::outcome_to(outcome)))
    }

    async fn stream_events(
        &self,
        request: Request<tonic::Streaming<pb::StreamEventsRequest>>,
    ) -> Result<Response<pb::LogResponse>, Status> {
        let principal = Principal::of(&request).map_err(|error| status(error.into()))?.clone();
        let answer = ingest::stream_events(&self.ingestion, &principal, request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn get_exposure_counts(
        &self,
        request: Request<pb::GetExposureCountsRequest>,
    ) -> Result<Response<pb::ExposureCounts>, Status> {
        let caller = caller(&request)?;
        let (project, key) = experiment_name("name", &request.get_ref().name)?;
        let counts = self
            .manager
            .exposure_counts(caller, &project, &key)
            .await
            .map_err(status)?;
        Ok(Response::new(ingest::counts_to(counts)))
    }

    async fn get_results(&self, request: Request<pb::GetResultsRequest>) -> Result<Response<pb::Results>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let (project, key) = experiment_name("name", &message.name)?;
        let phase = phase_of(message.phase)?;
        let dimension = (!message.dimension.is_empty()).then_some(message.dimension.as_str());
        let results = self
            .manager
            .results(caller, &project, &key, phase, dimension)
            .await
            .map_err(status)?;
        Ok(Response::new(results::results_to(&project, &key, &results)))
    }

    type WatchResultsStream = watch::ResultsStream;

    async fn watch_results(
        &self,
        request: Request<pb::GetResultsRequest>,
    ) -> Result<Response<Self::WatchResultsStream>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let (project, key) = experiment_name("name", &message.name)?;
        let phase = phase_of(message.phase)?;
        // The first results answer the call itself: a wrong name or role fails it.
        let dimension = (!message.dimension.is_empty()).then(|| message.dimension.clone());
        let first = self
            .manager
            .results(caller, &project, &key, phase, dimension.as_deref())
            .await
            .map_err(status)?;
        let target = watch::Target {
            principal: caller.principal.clone(),
            project,
            key,
            phase,
            dimension,
        };
        let stream = watch::results(self.manager.clone(), target, first, self.folds.clone());
        Ok(Response::new(stream))
    }

    async fn assign(&self, request: Request<pb::AssignRequest>) -> Result<Response<pb::AssignResponse>, Status> {
        let caller = caller(&request)?;
        let message = request.get_ref();
        let (project, key) = experiment_name("name", &message.name)?;
        let context = flag_engine::Context::from(message.context.as_ref().map(from_proto_struct).unwrap_or_default());
        let assigned = self
            .manager
            .assign(caller, &project, &key, &context)
            .await
            .map_err(status)?;
        Ok(Response::new(match assigned {
            Some((variant, phase)) => pb::AssignResponse {
                in_experiment: true,
                variant,
                phase: i32::try_from(phase).unwrap_or(i32::MAX),
            },
            None => pb::AssignResponse::default(),
        }))
    }
}
