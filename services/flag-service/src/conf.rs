//! The settings of flag-service: the platform's shared settings plus its own `[service]` section.

use serde::{Deserialize, Serialize};
use switchyard_platform::{ServiceIdentity, settings::SettingsError};

/// Name, settings key and default ports (HTTP 8016, gRPC 9016).
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: "flag-service",
    key: "flag_service",
    grpc_port: 9016,
    http_port: 8016,
};

/// Settings that only flag-service reads (`[service]`, or `[services.flag_service.service]` in a
/// shared file). None yet: later capabilities add theirs here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagServiceSettings {}

pub type Settings = switchyard_platform::Settings<FlagServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
