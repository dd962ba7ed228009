//! The gRPC face of config-service: maps protobuf requests to use cases and errors to statuses.

use switchyard_api::{
    config::v1::config_service_server::ConfigService,
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{about::About, error::to_status};
use tonic::{Request, Response, Status};

/// Implements `switchyard.config.v1.ConfigService`.
#[derive(Debug, Clone)]
pub struct ConfigServiceApi {
    about: About,
}

impl ConfigServiceApi {
    pub fn new(about: About) -> Self {
        Self { about }
    }
}

#[tonic::async_trait]
impl ConfigService for ConfigServiceApi {
    async fn get_service_info(
        &self,
        _request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let info = self.about.service_info().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(info))
    }
}
