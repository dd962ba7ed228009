//! The one place that talks gRPC to config-service: a channel to `--server`, the bearer key on
//! every call (and a break-glass reason when given), the project and environment a command
//! works in, and statuses turned into errors a person can read (see [`crate::grpc`]).

use switchyard_api::config::v1::config_service_client::ConfigServiceClient;
use tonic::{Status, service::interceptor::InterceptedService, transport::Channel};

use crate::grpc::{self, Bearer};

pub type Client = ConfigServiceClient<InterceptedService<Channel, Bearer>>;

/// Archives carry every release of a project, so allow far more than tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Where config-service is and the key to call it with, shared by `config` and `keys`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// config-service's gRPC address.
    #[arg(
        long,
        global = true,
        env = "SY_CONFIG_SERVER",
        default_value = "http://127.0.0.1:9015"
    )]
    pub server: String,
    /// API key sent as `authorization: Bearer …`; defaults to ./data/admin-api-key, which
    /// `switchyard dev` writes.
    #[arg(long, global = true, env = "SY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Override a freeze window or an approval policy with this reason (the key needs the
    /// `emergency` scope); audited, announced and reported.
    #[arg(long, global = true)]
    pub break_glass: Option<String>,
}

impl ServerArgs {
    /// A channel to config-service and the bearer credential for it.
    pub fn connect(&self) -> anyhow::Result<(Channel, Bearer)> {
        let bearer = Bearer::new(Some(&grpc::required_key(self.api_key.as_deref())?))?
            .breaking_glass(self.break_glass.as_deref())?;
        Ok((grpc::channel(&self.server)?, bearer))
    }
}

/// The project and environment a deployment or change-request command works in, and how it
/// prints.
#[derive(Debug, clap::Args)]
pub struct EnvironmentArgs {
    /// The project.
    #[arg(long, global = true, env = "SY_PROJECT", default_value = "default")]
    pub project: String,
    /// The environment.
    #[arg(long = "env", global = true, default_value = "dev")]
    pub environment: String,
    #[arg(long, global = true, value_enum, default_value_t = crate::output::Output::Text)]
    pub output: crate::output::Output,
}

impl EnvironmentArgs {
    /// `projects/{project}/environments/{environment}`.
    pub fn parent(&self) -> String {
        format!("projects/{}/environments/{}", self.project, self.environment)
    }
}

/// A client for `server` that connects on first use (and again after the connection drops).
pub fn connect(server: &ServerArgs) -> anyhow::Result<Client> {
    let (channel, bearer) = server.connect()?;
    Ok(ConfigServiceClient::with_interceptor(channel, bearer)
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
