//! The settings of experiment-service: the platform's shared settings plus its own `[service]` section.

use serde::{Deserialize, Serialize};
use switchyard_platform::{ServiceIdentity, settings::SettingsError};

/// Name, settings key and default ports (HTTP 8017, gRPC 9017).
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: "experiment-service",
    key: "experiment_service",
    grpc_port: 9017,
    http_port: 8017,
};

/// Settings that only experiment-service reads (`[service]`, or `[services.experiment_service.service]` in a
/// shared file). None yet: later capabilities add theirs here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentServiceSettings {}

pub type Settings = switchyard_platform::Settings<ExperimentServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
