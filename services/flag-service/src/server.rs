//! Wiring: the platform host, then this service's parts on top of it.

use switchyard_api::flags::v1::flag_service_server::FlagServiceServer;
use switchyard_platform::{GrpcServices, Host, Running, Shutdown, StartError};

use crate::{
    conf::{IDENTITY, Settings},
    data::MIGRATIONS,
    service::FlagServiceApi,
};

/// `GetServiceInfo` answers without credentials, like a version endpoint.
const PUBLIC: &[&str] = &["/switchyard.flags.v1.FlagService/GetServiceInfo"];

pub async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    let host = Host::prepare(IDENTITY, settings, shutdown, &MIGRATIONS).await?;
    let max_message = host.settings.limits.max_request_bytes;
    let api = FlagServiceServer::new(FlagServiceApi::new(host.about.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let services = PUBLIC
        .iter()
        .fold(GrpcServices::new().with_service(api), |services, path| {
            services.public(path)
        });
    host.serve(services).await
}
