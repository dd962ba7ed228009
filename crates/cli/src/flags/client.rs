//! The one place that talks gRPC to flag-service: a channel to `--server`, the bearer key on
//! every call that needs one, and statuses turned into errors a person can read (see
//! [`crate::grpc`]).

use switchyard_api::flags::v1::flag_service_client::FlagServiceClient;
use tonic::{Status, service::interceptor::InterceptedService, transport::Channel};

use crate::grpc::{self, Bearer};

pub type Client = FlagServiceClient<InterceptedService<Channel, Bearer>>;

/// An environment's flagd document travels in one message; allow well beyond tonic's 4 MiB
/// default so a large export or import is not cut off by the client.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Whether the command's calls need an API key. Evaluation does not (flagd providers send
/// none), but sends one when there is one, so the caller sees its own tenant's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Required,
    IfAny,
}

/// A client for `server` that connects on first use (and again after the connection drops).
pub fn connect(server: &str, api_key: Option<&str>, key: Key) -> anyhow::Result<Client> {
    let key = match key {
        Key::Required => Some(grpc::required_key(api_key)?),
        Key::IfAny => grpc::optional_key(api_key)?,
    };
    let bearer = Bearer::new(key.as_deref())?;
    Ok(FlagServiceClient::with_interceptor(grpc::channel(server)?, bearer)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// A status as an error naming its code, with the fields it lists one per line.
pub fn failure(status: &Status) -> anyhow::Error {
    grpc::failure(status, "is flag-service running at --server / SY_FLAG_SERVER?")
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
