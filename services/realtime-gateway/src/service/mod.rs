//! The gRPC face of realtime-gateway: maps protobuf requests to use cases and errors to statuses.

use switchyard_api::{
    realtime::v1::realtime_service_server::RealtimeService,
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{about::About, error::to_status};
use tonic::{Request, Response, Status};

/// Implements `switchyard.realtime.v1.RealtimeService`.
#[derive(Debug, Clone)]
pub struct RealtimeServiceApi {
    about: About,
}

impl RealtimeServiceApi {
    pub fn new(about: About) -> Self {
        Self { about }
    }
}

#[tonic::async_trait]
impl RealtimeService for RealtimeServiceApi {
    async fn get_service_info(
        &self,
        _request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let info = self.about.service_info().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(info))
    }
}
