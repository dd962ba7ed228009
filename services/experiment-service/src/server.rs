//! Wiring: the platform host, then this service's parts on top of it.

use switchyard_api::experiments::v1::experiment_service_server::ExperimentServiceServer;
use switchyard_platform::{GrpcServices, Host, Running, Shutdown, StartError};

use crate::{
    biz::management::Manager,
    conf::{IDENTITY, Settings},
    data::{MIGRATIONS, repository::SqlRepository},
    service::ExperimentServiceApi,
};

/// `GetServiceInfo` answers without credentials, like a version endpoint.
const PUBLIC: &[&str] = &["/switchyard.experiments.v1.ExperimentService/GetServiceInfo"];

pub async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    let host = Host::prepare(IDENTITY, settings, shutdown, &MIGRATIONS).await?;
    let max_message = host.settings.limits.max_request_bytes;
    let manager = std::sync::Arc::new(Manager::new(SqlRepository::new(host.database.pool.clone())));
    let api = ExperimentServiceServer::new(ExperimentServiceApi::new(host.about.clone(), manager))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let services = PUBLIC
        .iter()
        .fold(GrpcServices::new().with_service(api), |services, path| {
            services.public(path)
        });
    host.serve(services).await
}
