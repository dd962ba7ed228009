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

/// Settings that only presence-service reads (`[service]`, or
/// `[services.presence_service.service]` in a shared file). With the platform's `redis_url`,
/// presence state lives in Redis and every replica shares it; without, in memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceServiceSettings {
    /// How long a connection lost without a clean close (socket dropped, ping timeout, node
    /// lease lapsed) still counts as online, in milliseconds: a reconnect within it is no
    /// leave and join.
    pub offline_grace_ms: u64,
    /// An `online` connection without client activity for this long shows as `away`, in ms.
    pub away_after_ms: u64,
    /// The longest node lease a gateway may ask for, in milliseconds.
    pub max_lease_ttl_ms: u64,
    /// How often the replica holding the cleanup lock looks for lapsed leases and due
    /// deadlines, in milliseconds.
    pub cleanup_interval_ms: u64,
    /// Batches of events (up to a gateway batch each) kept in the event log for watchers to
    /// resume from.
    pub log_max_len: usize,
    /// Prefix of every Redis key, so deployments can share one Redis.
    pub redis_prefix: String,
    /// How often last seen / last active are written to the database, in milliseconds.
    pub last_seen_flush_ms: u64,
    /// How stale the database's last seen of a user who stays online may get, in
    /// milliseconds. The database answers only for users gone from Redis, so a user's times
    /// are written when they go offline and, while online, at most this often.
    pub last_seen_refresh_ms: u64,
    /// `UpdatePresence` calls per second one user may receive (burst 2×).
    pub updates_per_second_per_user: u32,
    /// Events one gateway batch may carry at most.
    pub max_batch_events: usize,
    /// User records a replica keeps after writing them, so the next batch about the same
    /// users need not read them back (a stale one costs one retry). 0 turns this off.
    pub cached_records: usize,
}

impl Default for PresenceServiceSettings {
    fn default() -> Self {
        Self {
            offline_grace_ms: 10_000,
            away_after_ms: 300_000,
            max_lease_ttl_ms: 120_000,
            cleanup_interval_ms: 250,
            log_max_len: 10_000,
            redis_prefix: "switchyard:presence:".to_owned(),
            last_seen_flush_ms: 5_000,
            last_seen_refresh_ms: 60_000,
            updates_per_second_per_user: 10,
            max_batch_events: 10_000,
            cached_records: 200_000,
        }
    }
}

pub type Settings = switchyard_platform::Settings<PresenceServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
