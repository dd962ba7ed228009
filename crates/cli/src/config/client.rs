//! The one place that talks gRPC to config-service: a channel to `--server`, the bearer key on
//! every call, and statuses turned into errors a person can read (see [`crate::grpc`]).

use switchyard_api::config::v1::config_service_client::ConfigServiceClient;
use tonic::{Status, service::interceptor::InterceptedService, transport::Channel};

use crate::grpc::{self, Bearer};

pub type Client = ConfigServiceClient<InterceptedService<Channel, Bearer>>;

/// Archives carry every release of a project, so allow far more than tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A client for `server` that connects on first use (and again after the connection drops).
pub fn connect(server: &str, api_key: Option<&str>) -> anyhow::Result<Client> {
    let bearer = Bearer::new(Some(&grpc::required_key(api_key)?))?;
    Ok(ConfigServiceClient::with_interceptor(grpc::channel(server)?, bearer)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// A status as an error naming its code, with the fields it lists one per line.
pub fn failure(status: &Status) -> anyhow::Error {
    grpc::failure(status, "is config-service running at --server / SY_CONFIG_SERVER?")
}

/// `client.call(request).await.checked()`: the response message, or a readable error.
pub trait Checked<T> {
    fn checked(self) -> anyhow::Result<T>;
}

impl<T> Checked<T> for Result<tonic::Response<T>, Status> {
    fn checked(self) -> anyhow::Result<T> {
        self.map(tonic::Response::into_inner).map_err(|status| failure(&status))
    }
}
