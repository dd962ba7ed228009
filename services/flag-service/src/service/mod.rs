//! The gRPC face of flag-service: maps protobuf requests to use cases and errors to statuses.

use switchyard_api::{
    flags::v1::flag_service_server::FlagService,
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{about::About, error::to_status};
use tonic::{Request, Response, Status};

/// Implements `switchyard.flags.v1.FlagService`.
#[derive(Debug, Clone)]
pub struct FlagServiceApi {
    about: About,
}

impl FlagServiceApi {
    pub fn new(about: About) -> Self {
        Self { about }
    }
}

#[tonic::async_trait]
impl FlagService for FlagServiceApi {
    async fn get_service_info(
        &self,
        _request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let info = self.about.service_info().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(info))
    }
}
