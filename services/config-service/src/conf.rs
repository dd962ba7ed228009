//! The settings of config-service: the platform's shared settings plus its own `[service]` section.

use std::collections::BTreeMap;

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
/// shared file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigServiceSettings {
    /// Key-encryption keys for secret values: id → base64 of 32 random bytes
    /// (`openssl rand -base64 32`). Several may be listed so that data keys wrapped under an
    /// older one still open; `active_secret_key` wraps new ones. When empty, a key is
    /// generated once into `<data_dir>/secrets.kek` — fine for one node, not for replicas.
    pub secret_keys: BTreeMap<String, String>,
    /// The key that wraps new data keys and that `RotateSecretKeys` re-wraps all of them under.
    pub active_secret_key: String,
    /// Change-log rows kept per environment; a watcher further behind gets a snapshot.
    pub retained_changes: i64,
    /// Changes kept in memory per environment for watchers that are slightly behind.
    pub recent_changes: usize,
    /// How often each replica re-reads the change log (covering bus messages lost while Redis
    /// was away) and saves client fetch records, in milliseconds.
    pub resync_interval_ms: u64,
    /// When set (and `[consul]` is configured), every published config is mirrored into
    /// Consul KV at `<prefix>/<tenant>/<project>/<environment>/<config>` as resolved JSON,
    /// secret values masked. Go services keep reading Consul KV as they do today.
    pub consul_kv_prefix: Option<String>,
    /// Progressive delivery (`[service.deployments]`).
    pub deployments: DeploymentSettings,
}

/// How deployments are driven.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeploymentSettings {
    /// How long after completion a deployment can still be reverted at once, in hours.
    pub revert_window_hours: u32,
    /// How long a replica's lease on the deployments it drives lasts without renewal, in
    /// milliseconds: after a crash, another replica takes over within this.
    pub lease_ms: u64,
    /// How often each replica's driver looks at its deployments, in milliseconds.
    pub tick_ms: u64,
}

impl Default for DeploymentSettings {
    fn default() -> Self {
        DeploymentSettings {
            revert_window_hours: 72,
            lease_ms: 3000,
            tick_ms: 200,
        }
    }
}

impl DeploymentSettings {
    /// The domain's view of these settings.
    pub fn to_domain(&self) -> crate::biz::deployments::DeploymentSettings {
        crate::biz::deployments::DeploymentSettings {
            revert_window_ms: i64::from(self.revert_window_hours) * 3_600_000,
            lease_ms: i64::try_from(self.lease_ms.clamp(100, 600_000)).unwrap_or(3000),
            tick_ms: self.tick_ms.clamp(10, 60_000),
        }
    }
}

impl Default for ConfigServiceSettings {
    fn default() -> Self {
        ConfigServiceSettings {
            secret_keys: BTreeMap::new(),
            active_secret_key: String::new(),
            retained_changes: 10_000,
            recent_changes: 1024,
            resync_interval_ms: 2000,
            consul_kv_prefix: None,
            deployments: DeploymentSettings::default(),
        }
    }
}

pub type Settings = switchyard_platform::Settings<ConfigServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
