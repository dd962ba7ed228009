//! The settings of flag-service: the platform's shared settings plus its own `[service]` section.

use std::path::PathBuf;

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
/// shared file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlagServiceSettings {
    /// flagd flag files (JSON, or YAML by extension) served as flag sources, in priority order:
    /// a flag in a later file overrides the same key in an earlier one. `--flags-file` adds to
    /// these. Each file is also a selector: `Flagd-Selector: source=<path as written here>`.
    pub flags_files: Vec<PathBuf>,
    /// How often flag files are checked for changes, in milliseconds.
    pub flags_file_poll_ms: u64,
    /// Added to every evaluation context, overriding the caller's keys (flagd's
    /// `--context-value`); in-process providers receive it as the sync context.
    /// `--context-value key=value` adds to it.
    pub static_context: serde_json::Map<String, serde_json::Value>,
    /// The tenant whose public environments (config-service's `public_evaluation`) a caller
    /// without credentials evaluates — keyless flagd providers. Every other managed flag
    /// needs an SDK key or management credentials. Empty: such callers see flag files only.
    pub anonymous_tenant: String,
    /// The managed source (`projects/{p}/environments/{e}`) a caller that sends no selector
    /// sees besides the flag files. Empty (the default): such callers see flag files only,
    /// and a managed flag is FLAG_NOT_FOUND with a message naming the selectors that hold it.
    pub default_selector: String,
    /// How often each replica compares stored project revisions with what it serves, as a
    /// safety net behind the change bus, in milliseconds.
    pub resync_interval_ms: u64,
    /// How often each replica looks for scheduled changes that are due, in milliseconds.
    pub schedule_poll_ms: u64,
    /// How often evaluation counts are written to storage, in milliseconds.
    pub usage_flush_ms: u64,
    /// Exposure records waiting for delivery at most; beyond this they are dropped (and
    /// counted) rather than slowing evaluation down.
    pub exposure_queue: usize,
    /// Exposure records per delivered batch at most.
    pub exposure_batch: usize,
    /// How long an exposure waits for its batch to fill, in milliseconds.
    pub exposure_linger_ms: u64,
}

impl Default for FlagServiceSettings {
    fn default() -> Self {
        Self {
            flags_files: Vec::new(),
            flags_file_poll_ms: 50,
            static_context: serde_json::Map::new(),
            anonymous_tenant: "default".to_owned(),
            default_selector: String::new(),
            resync_interval_ms: 2_000,
            schedule_poll_ms: 1_000,
            usage_flush_ms: 10_000,
            exposure_queue: 65_536,
            exposure_batch: 500,
            exposure_linger_ms: 200,
        }
    }
}

pub type Settings = switchyard_platform::Settings<FlagServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
