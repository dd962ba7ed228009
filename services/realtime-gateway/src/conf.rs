//! The settings of realtime-gateway: the platform's shared settings plus its own `[service]` section.
//!
//! Connection tokens are JWTs verified with the platform's `[auth]` keys (HS256 secret or
//! RS256 public keys, issuer, audience); see docs/realtime-protocol.md for their claims.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_platform::{ServiceIdentity, settings::SettingsError};

/// Name, settings key and default ports (HTTP 8018, gRPC 9018).
pub const IDENTITY: ServiceIdentity = ServiceIdentity {
    name: "realtime-gateway",
    key: "realtime_gateway",
    grpc_port: 9018,
    http_port: 8018,
};

/// Settings that only realtime-gateway reads (`[service]`, or
/// `[services.realtime_gateway.service]` in a shared file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealtimeServiceSettings {
    /// Channel namespaces by name: the part of a channel before its first `:` or `#`
    /// (`product` for `product:sku-1`, `user` for `user#42`). A channel without either
    /// belongs to the namespace named `""`. A channel in a namespace not listed here is refused.
    pub namespaces: BTreeMap<String, NamespaceSettings>,
    /// The tenant of clients that connect without a token, and of tokens without a `tenant`
    /// claim. Publishers reach those clients by publishing as this tenant.
    pub anonymous_tenant: String,
    /// What one client connection may do.
    pub client: ClientLimits,
    /// How long an idempotency key remembers its publish, in seconds.
    pub idempotency_ttl_secs: u64,
    /// How long a channel's position (offset and epoch) outlives its last publication, in
    /// seconds. After that the channel starts over with a new epoch.
    pub stream_meta_ttl_secs: u64,
    /// How often each node reports its counts for `Channels` and `Info`, in milliseconds.
    pub node_report_ms: u64,
    /// Prefix of every Redis key and pub/sub channel the gateway uses, so several
    /// deployments can share one Redis.
    pub redis_prefix: String,
    /// `$config:{project}:{env}` and `$flags:{project}:{env}`: live configuration and flags.
    pub live: LiveSettings,
    /// Reporting connections to presence-service.
    pub presence: PresenceSettings,
}

/// How the node reports its connections to presence-service (found through discovery), over
/// one stream authenticated with the services' shared credential (`auth.key_sync_credential`).
/// Only connections with a user (a token's `sub`) are reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceSettings {
    /// Report when presence-service is known and the shared credential is set.
    pub enabled: bool,
    /// The node lease: presence-service takes this node's connections offline (after its
    /// grace period) when it hears nothing for this long, in milliseconds.
    pub lease_ttl_ms: u64,
    /// How long events gather before a batch is sent, in milliseconds.
    pub flush_ms: u64,
    /// Events per batch at most.
    pub max_batch: usize,
    /// Unsent events kept while presence-service is unreachable; beyond, the node starts over
    /// under a new lease and resends its connections.
    pub max_pending: usize,
    /// Client activity is reported at most this often per connection, in milliseconds.
    pub activity_report_ms: u64,
    /// `presence` commands per second one connection may send (burst 2×).
    pub updates_per_second: u32,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            lease_ttl_ms: 15_000,
            flush_ms: 50,
            max_batch: 5_000,
            max_pending: 200_000,
            activity_report_ms: 10_000,
            updates_per_second: 2,
        }
    }
}

/// How the gateway feeds `$config` and `$flags` channels. It watches config-service and
/// flag-service (found through discovery: Consul, or `peers`) for an environment while a
/// client here subscribes to its channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveSettings {
    /// The API key (or JWT) the gateway watches with; it needs viewer on the projects. Unset:
    /// the watches carry no credentials and see what anonymous callers see.
    pub api_key: Option<String>,
    /// Whose `$config`/`$flags` channels are fed: the tenant of `api_key`.
    pub tenant: String,
    /// How long a feed keeps watching after its channel's last subscriber here left, in ms.
    pub linger_ms: u64,
    /// How often the node looks for newly subscribed feeds, in milliseconds.
    pub scan_ms: u64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            api_key: None,
            tenant: "default".to_owned(),
            linger_ms: 30_000,
            scan_ms: 500,
        }
    }
}

/// What a namespace's channels keep and allow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceSettings {
    /// Publications kept per channel for history and recovery; 0 keeps none (a client can
    /// then recover only when it missed nothing).
    pub history_size: usize,
    /// How long kept publications live, in seconds; 0 with `history_size` > 0 is refused.
    pub history_ttl_secs: u64,
    /// Clients may publish into these channels (otherwise only the server API can).
    pub allow_publish: bool,
    /// Any connected client may subscribe, without the channel in its token.
    pub public: bool,
    /// Clients without a token may subscribe (needs `public`).
    pub allow_anonymous: bool,
    /// Subscribers with a user are reported to presence-service as the channel's members,
    /// and clients that may subscribe to a channel may also subscribe to its
    /// `$presence:{channel}` (who is there: a snapshot, then joins, leaves and updates).
    pub presence: bool,
    /// Clients that may subscribe to a channel may also subscribe to `$presence:{channel}`:
    /// its members (user ids, status, page) as a snapshot, then joins, leaves and updates.
    /// Needs `presence`. Off, the channel's presence is counted but nobody is named.
    pub presence_members: bool,
}

/// Limits on one client connection, and on the connections of one user or address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientLimits {
    /// Largest frame or SSE request accepted from a client, in bytes.
    pub max_message_bytes: usize,
    /// Bytes waiting to be written to one client at most; a client that falls this far
    /// behind is disconnected (code 3001, reconnect) so it cannot slow anyone else.
    pub max_queue_bytes: usize,
    /// Channels one connection may subscribe to.
    pub max_subscriptions: usize,
    /// Connections one user may hold on one node.
    pub max_connections_per_user: usize,
    /// Connections one client address may hold on one node.
    pub max_connections_per_ip: usize,
    /// New connections per second one client address may open (burst 2×).
    pub connects_per_second_per_ip: u32,
    /// Commands per second one connection may send (burst 2×); beyond, it is disconnected.
    pub commands_per_second: u32,
    /// How long a client's socket may take nothing while bytes wait for it before the
    /// client counts as gone (its socket buffer stayed full), in milliseconds. A client that
    /// keeps reading is bounded by `max_queue_bytes` instead.
    pub write_timeout_ms: u64,
    /// The kernel send buffer of each client connection (`SO_SNDBUF`; Linux doubles it). Kept
    /// small so that what a client has not read waits in the gateway, where
    /// `max_queue_bytes` and `write_timeout_ms` see it: with a kernel-sized buffer (megabytes)
    /// a client that reads steadily would look stalled while it drains the kernel's copy.
    pub socket_send_buffer_bytes: usize,
    /// How long a client has to send `connect` after opening the socket, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How often the server pings an idle client, in milliseconds.
    pub ping_interval_ms: u64,
    /// How long after a ping the server waits for any frame before it gives up, in ms.
    pub pong_timeout_ms: u64,
    /// The longest batching window a client may ask for at connect, in milliseconds.
    pub max_batch_window_ms: u64,
    /// Reconnect advice: the first delay a client should wait, in milliseconds; clients are
    /// told a random delay between this and `reconnect_max_delay_ms` so they do not return
    /// all at once.
    pub reconnect_min_delay_ms: u64,
    pub reconnect_max_delay_ms: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 65_536,
            max_queue_bytes: 1 << 20,
            max_subscriptions: 128,
            max_connections_per_user: 32,
            max_connections_per_ip: 100_000,
            connects_per_second_per_ip: 100_000,
            commands_per_second: 100,
            write_timeout_ms: 10_000,
            socket_send_buffer_bytes: 65_536,
            connect_timeout_ms: 10_000,
            ping_interval_ms: 25_000,
            pong_timeout_ms: 10_000,
            max_batch_window_ms: 1_000,
            reconnect_min_delay_ms: 500,
            reconnect_max_delay_ms: 5_000,
        }
    }
}

impl Default for RealtimeServiceSettings {
    fn default() -> Self {
        Self {
            namespaces: default_namespaces(),
            anonymous_tenant: "default".to_owned(),
            client: ClientLimits::default(),
            idempotency_ttl_secs: 300,
            stream_meta_ttl_secs: 30 * 24 * 3600,
            node_report_ms: 2_000,
            redis_prefix: "switchyard:rt:".to_owned(),
            live: LiveSettings::default(),
            presence: PresenceSettings::default(),
        }
    }
}

/// `$presence:{channel}` carries the presence of `{channel}`.
pub const PRESENCE_NAMESPACE: &str = "$presence";

/// The ecosystem's channel conventions (see proto/switchyard/realtime/v1/events.proto).
fn default_namespaces() -> BTreeMap<String, NamespaceSettings> {
    let history = |size, ttl_secs| NamespaceSettings {
        history_size: size,
        history_ttl_secs: ttl_secs,
        ..NamespaceSettings::default()
    };
    let public = |size, ttl_secs| NamespaceSettings {
        public: true,
        allow_anonymous: true,
        ..history(size, ttl_secs)
    };
    let product = NamespaceSettings {
        presence: true,
        ..public(20, 300)
    };
    // Chat rooms and live sessions: members see each other through `$presence:room:…`.
    let room = NamespaceSettings {
        presence: true,
        presence_members: true,
        ..history(50, 3_600)
    };
    BTreeMap::from([
        (String::new(), history(100, 300)),
        ("product".to_owned(), product),
        ("room".to_owned(), room),
        ("promo".to_owned(), public(20, 3_600)),
        ("order".to_owned(), history(50, 3_600)),
        ("user".to_owned(), history(100, 3_600)),
        ("$config".to_owned(), history(100, 3_600)),
        ("$flags".to_owned(), history(100, 3_600)),
        // Experiments that stopped themselves (experiment-service publishes here).
        ("$experiments".to_owned(), history(100, 86_400)),
        // Every event of every deployment of a project (config-service publishes here).
        ("$deployments".to_owned(), history(500, 86_400)),
        // Who is in a channel of a namespace with `presence_members` (see channel.rs).
        (PRESENCE_NAMESPACE.to_owned(), history(100, 300)),
    ])
}

impl RealtimeServiceSettings {
    /// Settings that would make the gateway misbehave are refused at start.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (name, namespace) in &self.namespaces {
            if namespace.history_size > 0 && namespace.history_ttl_secs == 0 {
                return Err(invalid(
                    format!("service.namespaces.{name}.history_ttl_secs"),
                    "must be set when history_size is",
                ));
            }
            if namespace.presence_members && !namespace.presence {
                return Err(invalid(
                    format!("service.namespaces.{name}.presence_members"),
                    "needs `presence = true`",
                ));
            }
            if namespace.allow_anonymous && !namespace.public {
                return Err(invalid(
                    format!("service.namespaces.{name}.allow_anonymous"),
                    "needs `public = true`",
                ));
            }
        }
        let client = &self.client;
        if client.reconnect_min_delay_ms > client.reconnect_max_delay_ms {
            return Err(invalid(
                "service.client.reconnect_min_delay_ms".into(),
                "must not exceed reconnect_max_delay_ms",
            ));
        }
        if client.max_message_bytes == 0 || client.max_queue_bytes < client.max_message_bytes {
            return Err(invalid(
                "service.client.max_queue_bytes".into(),
                "must be at least max_message_bytes (and both above 0)",
            ));
        }
        Ok(())
    }
}

fn invalid(key: String, message: &str) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: message.to_owned(),
    }
}

pub type Settings = switchyard_platform::Settings<RealtimeServiceSettings>;

/// Defaults, then the settings file, then `SWITCHYARD_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, SettingsError> {
    switchyard_platform::settings::load(&IDENTITY, file)
}

/// The built-in defaults, for tests and `switchyard dev` to adjust.
pub fn defaults() -> Settings {
    Settings::defaults(&IDENTITY)
}
