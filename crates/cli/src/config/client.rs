//! The one place that talks gRPC to config-service: a channel to `--server`, the bearer key on
//! every call, and statuses turned into errors a person can read (code, message, and every
//! invalid field the service listed).

use std::path::Path;

use anyhow::Context as _;
use switchyard_api::config::v1::config_service_client::ConfigServiceClient;
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_types::StatusExt as _;

pub type Client = ConfigServiceClient<InterceptedService<Channel, Bearer>>;

/// Archives carry every release of a project, so allow far more than tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Where `switchyard dev` keeps the admin key of its data directory.
const DEV_KEY_FILE: &str = "data/admin-api-key";

/// Adds `authorization: Bearer <key>` to every request.
#[derive(Debug, Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A client for `server` that connects on first use (and again after the connection drops).
pub fn connect(server: &str, api_key: Option<&str>) -> anyhow::Result<Client> {
    let key = match api_key {
        Some(key) => key.trim().to_owned(),
        None => dev_key()?,
    };
    let header = format!("Bearer {key}")
        .parse()
        .context("the API key contains characters that cannot be sent in a header")?;
    let channel = Endpoint::from_shared(server.to_owned())
        .with_context(|| format!("--server {server} is not a URL"))?
        .connect_lazy();
    Ok(ConfigServiceClient::with_interceptor(channel, Bearer(header))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

fn dev_key() -> anyhow::Result<String> {
    match std::fs::read_to_string(Path::new(DEV_KEY_FILE)) {
        Ok(key) => Ok(key.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(anyhow::anyhow!(
            "no API key: pass --api-key, set SY_API_KEY, or run this where `switchyard dev` wrote ./{DEV_KEY_FILE}"
        )),
        Err(error) => Err(error).with_context(|| format!("cannot read ./{DEV_KEY_FILE}")),
    }
}

/// The invalid fields a status lists, as `field: description`.
pub fn violations(status: &Status) -> Vec<String> {
    let details = status.get_error_details();
    let Some(bad_request) = details.bad_request() else {
        return Vec::new();
    };
    bad_request
        .field_violations
        .iter()
        .map(|violation| format!("{}: {}", violation.field, violation.description))
        .collect()
}

/// A status as an error naming its code, with the fields it lists one per line.
pub fn failure(status: &Status) -> anyhow::Error {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if status.code() == Code::Unavailable {
        text.push_str(" (is config-service running at --server / SY_CONFIG_SERVER?)");
    }
    for violation in violations(status) {
        text.push_str("\n  ");
        text.push_str(&violation);
    }
    anyhow::anyhow!(text)
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
