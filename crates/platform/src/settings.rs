//! Layered settings, the same for every service: built-in defaults, then the settings
//! file (`switchyard.toml`, or the path given with `--config`), then `SWITCHYARD_*`
//! environment variables. Every key has a safe default, so a service starts with none.
//!
//! One file can configure several services: top-level keys apply to all of them, and
//! `[services.<key>]` (for example `[services.flag_service]`) overrides them for one. The
//! environment follows the same shape with `__` between levels:
//! `SWITCHYARD_STORAGE__URL` for all, `SWITCHYARD_SERVICES__FLAG_SERVICE__GRPC__PORT` for one.

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::auth::AuthSettings;

/// Which service is being configured, and the ports it gets by default.
#[derive(Debug, Clone, Copy)]
pub struct ServiceIdentity {
    /// The name registered in discovery, e.g. `config-service`.
    pub name: &'static str,
    /// The key of its section under `[services]`, e.g. `config_service`.
    pub key: &'static str,
    pub grpc_port: u16,
    pub http_port: u16,
}

/// Settings every service shares, plus the service's own section `S` under `[service]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings<S = ()> {
    /// The gRPC listener (`grpc.host`, `grpc.port`).
    pub grpc: Listener,
    /// The HTTP listener: JSON transcoding, health, metrics, OpenAPI.
    pub http: Listener,
    /// The address other instances and Consul reach this one at; defaults to `grpc.host`
    /// when that is a concrete address, else 127.0.0.1.
    pub advertise_address: Option<IpAddr>,
    /// Where embedded data lives (SQLite files, the dev admin key).
    pub data_dir: PathBuf,
    pub storage: StorageSettings,
    /// Redis for the change bus between replicas; unset means in-process (single node).
    pub redis_url: Option<String>,
    /// Consul discovery; unset means static peers from `peers`.
    pub consul: Option<ConsulSettings>,
    /// Static discovery: service name → gRPC addresses (`http://host:port`).
    pub peers: BTreeMap<String, Vec<String>>,
    pub telemetry: TelemetrySettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub shutdown: ShutdownSettings,
    /// The service's own settings.
    pub service: S,
    /// Per-service overrides; already merged into the fields above by [`load`].
    #[serde(default, skip_serializing)]
    pub services: figment::value::Dict,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub host: IpAddr,
    /// 0 picks a free port (tests do this).
    pub port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `postgres://…` or `sqlite://…`; empty means `sqlite://<data_dir>/<service>.db`.
    pub url: String,
    pub max_connections: u32,
    /// Seconds to wait for a connection from the pool.
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsulSettings {
    /// The local agent, e.g. `http://127.0.0.1:8500`.
    pub address: String,
    /// ACL token sent as `X-Consul-Token`.
    pub token: Option<String>,
    pub tags: Vec<String>,
    /// How often Consul runs the gRPC health check, e.g. `10s`.
    pub check_interval: String,
    /// How long a critical instance stays registered, e.g. `1m`.
    pub deregister_critical_after: String,
    /// How long a blocking query waits for a change, e.g. `5m`.
    pub watch_wait: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info,sqlx=warn`.
    pub log_filter: String,
    /// OTLP/gRPC endpoint for traces, e.g. `http://otel-collector:4317`; unset disables export.
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest request body or gRPC message accepted, in bytes.
    pub max_request_bytes: usize,
    /// Per-call deadline in milliseconds (streams are exempt).
    pub request_timeout_ms: u64,
    /// Calls served at once; more are shed with UNAVAILABLE.
    pub max_concurrent_requests: usize,
    /// Sustained calls per second per authenticated principal (burst = 2x).
    pub per_principal_rps: u32,
    /// Sustained calls per second per client IP for anonymous calls (burst = 2x).
    pub per_ip_rps: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// After readiness turns false, how long to keep serving so load balancers notice.
    pub drain_delay_ms: u64,
    /// How long in-flight calls get to finish before the process gives up on them.
    pub grace_period_ms: u64,
}

/// A setting that is present but wrong; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{}", describe(.0))]
    Parse(Box<figment::Error>),
    #[error("invalid setting `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

/// `invalid setting `grpc.port`: invalid type … (from `SWITCHYARD_` environment variable(s))`:
/// the key in the same lowercase dotted form a settings file uses.
fn describe(error: &figment::Error) -> String {
    let key = error.path.join(".").to_lowercase();
    let source = error
        .metadata
        .as_ref()
        .map(|metadata| format!(" (from {})", metadata.name))
        .unwrap_or_default();
    if key.is_empty() {
        return format!("invalid settings: {}{source}", error.kind);
    }
    format!("invalid setting `{key}`: {}{source}", error.kind)
}

impl From<figment::Error> for SettingsError {
    fn from(error: figment::Error) -> Self {
        SettingsError::Parse(Box::new(error))
    }
}

impl<S: Default> Settings<S> {
    /// The built-in defaults for one service.
    pub fn defaults(identity: &ServiceIdentity) -> Self {
        let loopback = IpAddr::from([0, 0, 0, 0]);
        Settings {
            grpc: Listener {
                host: loopback,
                port: identity.grpc_port,
            },
            http: Listener {
                host: loopback,
                port: identity.http_port,
            },
            advertise_address: None,
            data_dir: PathBuf::from("data"),
            storage: StorageSettings {
                url: String::new(),
                max_connections: 10,
                acquire_timeout_secs: 5,
            },
            redis_url: None,
            consul: None,
            peers: BTreeMap::new(),
            telemetry: TelemetrySettings {
                log_format: LogFormat::Json,
                log_filter: "info,sqlx=warn,h2=warn,tower=warn".to_owned(),
                otlp_endpoint: None,
            },
            auth: AuthSettings::default(),
            limits: LimitSettings {
                max_request_bytes: 4 * 1024 * 1024,
                request_timeout_ms: 30_000,
                max_concurrent_requests: 1024,
                per_principal_rps: 500,
                per_ip_rps: 100,
            },
            shutdown: ShutdownSettings {
                drain_delay_ms: 0,
                grace_period_ms: 10_000,
            },
            service: S::default(),
            services: figment::value::Dict::new(),
        }
    }
}

impl Default for ConsulSettings {
    fn default() -> Self {
        ConsulSettings {
            address: "http://127.0.0.1:8500".to_owned(),
            token: None,
            tags: Vec::new(),
            check_interval: "10s".to_owned(),
            deregister_critical_after: "1m".to_owned(),
            watch_wait: "5m".to_owned(),
        }
    }
}

/// Loads the settings of one service: defaults, then the file (when it exists; a path
/// given explicitly must exist), then the environment.
pub fn load<S>(identity: &ServiceIdentity, file: Option<&std::path::Path>) -> Result<Settings<S>, SettingsError>
where
    S: Default + Serialize + DeserializeOwned,
{
    let mut figment = Figment::from(Serialized::defaults(Settings::<S>::defaults(identity)));
    let path = match file {
        Some(path) if !path.exists() => {
            return Err(SettingsError::Invalid {
                key: "--config".to_owned(),
                reason: format!("file {} does not exist", path.display()),
            });
        }
        Some(path) => path.to_path_buf(),
        None => PathBuf::from("switchyard.toml"),
    };
    let section = format!("services.{}", identity.key);
    let file = Figment::from(Toml::file(&path));
    // `SWITCHYARD_CONFIG` names the file (the binaries' `--config`); it is not a setting.
    let env = Figment::from(Env::prefixed("SWITCHYARD_").split("__").filter(|key| key != "config"));
    figment = figment
        .merge(file.clone())
        .merge(file.focus(&section))
        .merge(env.clone())
        .merge(env.focus(&section));
    let settings: Settings<S> = figment.extract()?;
    settings.validate()?;
    Ok(settings)
}

impl<S> Settings<S> {
    /// Checks what serde cannot: URL schemes and duration formats.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let url = &self.storage.url;
        if !url.is_empty()
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
            && !url.starts_with("sqlite:")
        {
            return Err(invalid("storage.url", "must start with postgres:// or sqlite://"));
        }
        if let Some(redis) = &self.redis_url
            && !redis.starts_with("redis://")
            && !redis.starts_with("rediss://")
        {
            return Err(invalid("redis_url", "must start with redis:// or rediss://"));
        }
        if let Some(consul) = &self.consul {
            if !consul.address.starts_with("http://") && !consul.address.starts_with("https://") {
                return Err(invalid("consul.address", "must be an http:// or https:// URL"));
            }
            for (key, value) in [
                ("consul.check_interval", &consul.check_interval),
                ("consul.deregister_critical_after", &consul.deregister_critical_after),
                ("consul.watch_wait", &consul.watch_wait),
            ] {
                parse_duration(value).ok_or_else(|| invalid(key, "must be a duration such as 500ms, 10s, 1m or 1h"))?;
            }
        }
        if self.limits.max_request_bytes == 0 {
            return Err(invalid("limits.max_request_bytes", "must be greater than 0"));
        }
        if self.limits.max_concurrent_requests == 0 {
            return Err(invalid("limits.max_concurrent_requests", "must be greater than 0"));
        }
        Ok(())
    }

    /// The storage URL, defaulting to a SQLite file named after the service in `data_dir`.
    pub fn storage_url(&self, service: &str) -> String {
        if !self.storage.url.is_empty() {
            return self.storage.url.clone();
        }
        format!("sqlite://{}/{service}.db", self.data_dir.display())
    }
}

fn invalid(key: &str, reason: &str) -> SettingsError {
    SettingsError::Invalid {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Parses Consul-style durations: a whole number followed by `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => number,
        "s" => number.checked_mul(1_000)?,
        "m" => number.checked_mul(60_000)?,
        "h" => number.checked_mul(3_600_000)?,
        "d" => number.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(millis))
}
