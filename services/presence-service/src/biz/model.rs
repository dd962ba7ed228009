//! What presence is made of: a user's record (their connections, last seen, last active) and
//! the metas a connection reports about itself. A record is stored whole and versioned, so
//! every replica computes a change the same way from the same record (see `engine`). Stores
//! keep records in a compact binary form (postcard; see `data::redis`), so every field is
//! always written: adding one means a new record version, not a default.

use std::collections::BTreeSet;

use litemap::LiteMap;
use serde::{Deserialize, Serialize};

/// What a connection says it is doing. `Invisible` counts as offline to everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Online,
    Away,
    Busy,
    Invisible,
}

impl Status {
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "online" => Some(Status::Online),
            "away" => Some(Status::Away),
            "busy" => Some(Status::Busy),
            "invisible" => Some(Status::Invisible),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Away => "away",
            Status::Busy => "busy",
            Status::Invisible => "invisible",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub kind: String,
    pub os: String,
    pub app_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Shopping {
    pub viewing_product: String,
    pub cart_items: i32,
    pub in_checkout: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Location {
    pub country: String,
    pub city: String,
}

/// A connection's metas as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metas {
    pub status: Status,
    pub page: String,
    pub shopping: Option<Shopping>,
    pub location: Option<Location>,
    pub quality: String,
}

/// A change to metas: only the fields set replace what is stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetasPatch {
    pub status: Option<Status>,
    pub page: Option<String>,
    pub shopping: Option<Shopping>,
    pub location: Option<Location>,
    pub quality: Option<String>,
}

impl MetasPatch {
    pub fn is_empty(&self) -> bool {
        *self == MetasPatch::default()
    }

    pub fn apply_to(&self, metas: &mut Metas) {
        if let Some(status) = self.status {
            metas.status = status;
        }
        if let Some(page) = &self.page {
            metas.page.clone_from(page);
        }
        if let Some(shopping) = &self.shopping {
            metas.shopping = Some(shopping.clone());
        }
        if let Some(location) = &self.location {
            metas.location = Some(location.clone());
        }
        if let Some(quality) = &self.quality {
            metas.quality.clone_from(quality);
        }
    }
}

/// The node name of connections that services report with `UpdatePresence`.
pub const API_NODE: &str = "api";

/// One connection of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub node: String,
    pub device: Device,
    pub connected_ms: i64,
    pub active_ms: i64,
    pub metas: Metas,
    /// Channels subscribed (only those whose namespace tracks presence).
    pub channels: BTreeSet<String>,
    /// Channels a lost connection had, inherited by the connection that adopted it: they
    /// count until `stale_until_ms`, or for good once the client resubscribes.
    pub stale_channels: BTreeSet<String>,
    pub stale_until_ms: Option<i64>,
    /// Set while the connection is lost: it leaves at this time unless a reconnect adopts it.
    /// For a service's report, when the report expires.
    pub leaves_at_ms: Option<i64>,
    /// A lost gateway connection (as opposed to a service report that simply lasts a while).
    pub lost: bool,
}

impl ConnectionRecord {
    pub fn is_visible(&self) -> bool {
        self.metas.status != Status::Invisible
    }
}

/// Everything known of one user while any connection of theirs exists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserRecord {
    /// Increases with every change; stores compare it before they write (optimistic
    /// concurrency between replicas), and events carry it as the user's sequence.
    pub version: u64,
    /// By connection id (unique per user). A user has a few, and every read decodes them, so
    /// they are a sorted Vec; stored exactly as a map would be.
    pub connections: LiteMap<String, ConnectionRecord>,
    /// The last time a connection was open (updated when the last one leaves).
    pub last_seen_ms: i64,
    pub last_active_ms: i64,
    /// The connection that was active last: its page and activity are the user's.
    pub active_connection: String,
    /// When the record was last written: what watchers were last shown is its view then.
    pub changed_ms: i64,
    /// When the record next needs attention without any report (see `view::next_due`).
    pub due_ms: Option<i64>,
    /// When last seen / last active were last queued for the database (0: never).
    pub saved_ms: i64,
}

/// A user within a tenant: how stores key records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserKey {
    pub tenant: String,
    pub user: String,
}

impl UserKey {
    pub fn new(tenant: impl Into<String>, user: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            user: user.into(),
        }
    }
}

/// Last seen / last active of a user nobody holds a record for any more, kept durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LastSeen {
    pub seen_ms: i64,
    pub active_ms: i64,
}
