//! The gRPC face of presence-service: maps protobuf requests to use cases and errors to statuses.

use switchyard_api::{
    presence::v1::presence_service_server::PresenceService,
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{about::About, error::to_status};
use tonic::{Request, Response, Status};

/// Implements `switchyard.presence.v1.PresenceService`.
#[derive(Debug, Clone)]
pub struct PresenceServiceApi {
    about: About,
}

impl PresenceServiceApi {
    pub fn new(about: About) -> Self {
        Self { about }
    }
}

#[tonic::async_trait]
impl PresenceService for PresenceServiceApi {
    async fn get_service_info(
        &self,
        _request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let info = self.about.service_info().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(info))
    }
}
