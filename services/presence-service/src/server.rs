//! Wiring: the platform host, then this service's parts on top of it.

use switchyard_api::presence::v1::presence_service_server::PresenceServiceServer;
use switchyard_platform::{GrpcServices, Host, Running, Shutdown, StartError};

use crate::{
    conf::{IDENTITY, Settings},
    data::MIGRATIONS,
    service::PresenceServiceApi,
};

/// `GetServiceInfo` answers without credentials, like a version endpoint.
const PUBLIC: &[&str] = &["/switchyard.presence.v1.PresenceService/GetServiceInfo"];

pub async fn start(settings: Settings, shutdown: Shutdown) -> Result<Running, StartError> {
    let host = Host::prepare(IDENTITY, settings, shutdown, &MIGRATIONS).await?;
    let max_message = host.settings.limits.max_request_bytes;
    let api = PresenceServiceServer::new(PresenceServiceApi::new(host.about.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let services = PUBLIC
        .iter()
        .fold(GrpcServices::new().with_service(api), |services, path| {
            services.public(path)
        });
    host.serve(services).await
}
