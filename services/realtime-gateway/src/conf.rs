//! The settings of realtime-gateway: the platform's shared settings plus its own `[service]` section.

use serde::{Deserialize, Serialize};
use switchyard_platform::{ServiceIdentity, settings::SettingsError};

/// Name, settings key and default ports (HTTP 8018, gRPC 9018).
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: "realtime-gateway",
    key: "realtime_gateway",
    grpc_port: 9018,
    http_port: 8018,
};

/// Settings that only realtime-gateway reads (`[service]`, or `[services.realtime_gateway.service]` in a
/// shared file). None yet: later capabilities add theirs here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeServiceSettings {}

pub type Settings = switchyard_platform::Settings<RealtimeServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
