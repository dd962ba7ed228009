//! The settings of presence-service: the platform's shared settings plus its own `[service]` section.

use serde::{Deserialize, Serialize};
use switchyard_platform::{ServiceIdentity, settings::SettingsError};

/// Name, settings key and default ports (HTTP 8019, gRPC 9019).
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: "presence-service",
    key: "presence_service",
    grpc_port: 9019,
    http_port: 8019,
};

/// Settings that only presence-service reads (`[service]`, or `[services.presence_service.service]` in a
/// shared file). None yet: later capabilities add theirs here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceServiceSettings {}

pub type Settings = switchyard_platform::Settings<PresenceServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
