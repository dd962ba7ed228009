//! The settings of config-service: the platform's shared settings plus its own `[service]` section.

use serde::{Deserialize, Serialize};
use switchyard_platform::{ServiceIdentity, settings::SettingsError};

/// Name, settings key and default ports (HTTP 8015, gRPC 9015).
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: "config-service",
    key: "config_service",
    grpc_port: 9015,
    http_port: 8015,
};

/// Settings that only config-service reads (`[service]`, or `[services.config_service.service]` in a
/// shared file). None yet: later capabilities add theirs here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigServiceSettings {}

pub type Settings = switchyard_platform::Settings<ConfigServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
