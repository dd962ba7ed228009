//! The gRPC face of experiment-service: maps protobuf requests to use cases and errors to statuses.

use switchyard_api::{
    experiments::v1::experiment_service_server::ExperimentService,
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{about::About, error::to_status};
use tonic::{Request, Response, Status};

/// Implements `switchyard.experiments.v1.ExperimentService`.
#[derive(Debug, Clone)]
pub struct ExperimentServiceApi {
    about: About,
}

impl ExperimentServiceApi {
    pub fn new(about: About) -> Self {
        Self { about }
    }
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
}
