//! The settings of experiment-service: the platform's shared settings plus its own `[service]` section.

use serde::{Deserialize, Serialize};
use switchyard_platform::{ServiceIdentity, settings::SettingsError};

use crate::biz::ingest::IngestLimits;

/// Name, settings key and default ports (HTTP 8017, gRPC 9017).
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: "experiment-service",
    key: "experiment_service",
    grpc_port: 9017,
    http_port: 8017,
};

/// Settings that only experiment-service reads (`[service]`, or
/// `[services.experiment_service.service]` in a shared file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentServiceSettings {
    /// Exposures and events older than this (by their own time) are refused. Their ids are
    /// remembered this long plus `max_clock_skew_seconds` after they arrive, so a replay is
    /// counted once or refused as too old (see `biz::id_retention`).
    pub max_event_age_hours: u32,
    /// Exposures and events this far ahead of the server's clock are refused.
    pub max_clock_skew_seconds: u32,
    /// `LogExposures`/`LogEvents` batches stored at once; beyond, RESOURCE_EXHAUSTED.
    pub max_batches_in_flight: usize,
    /// How often each running experiment's guardrails and SRM are checked (seconds). A
    /// breach stops the experiment (see `biz::guardrails`); it needs `auth.key_sync_credential`.
    pub guardrail_check_seconds: u64,
}

impl Default for ExperimentServiceSettings {
    fn default() -> Self {
        Self {
            max_event_age_hours: 7 * 24,
            max_clock_skew_seconds: 300,
            max_batches_in_flight: 32,
            guardrail_check_seconds: 60,
        }
    }
}

impl ExperimentServiceSettings {
    /// The bounds ingestion enforces, in the units it counts in.
    pub fn ingest_limits(&self) -> IngestLimits {
        IngestLimits {
            max_age_ms: i64::from(self.max_event_age_hours) * 3_600_000,
            max_skew_ms: i64::from(self.max_clock_skew_seconds) * 1_000,
            max_in_flight: self.max_batches_in_flight,
        }
    }
}

pub type Settings = switchyard_platform::Settings<ExperimentServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
