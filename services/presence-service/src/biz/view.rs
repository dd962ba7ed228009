//! How a user's record looks from outside: online or not, the status that wins across
//! devices, the pages and channels they count in. Events are the differences between the
//! view before and after a change, so "what others see" is defined once, here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::model::{ConnectionRecord, Device, Location, Shopping, Status, UserRecord};

/// What the presence rules need besides the record.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A lost connection lingers this long before it leaves.
    pub offline_grace_ms: i64,
    /// An `online` connection without client activity for this long shows as `away`.
    pub away_after_ms: i64,
    /// An online user's last seen is kept durably at most this often (see `engine::apply`).
    pub last_seen_refresh_ms: i64,
}

/// One connection as others see it (or as admins see it, invisible included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    pub id: String,
    pub node: String,
    pub device: Device,
    pub connected_ms: i64,
    pub active_ms: i64,
    pub status: String,
    pub page: String,
    pub shopping: Option<Shopping>,
    pub location: Option<Location>,
    pub quality: String,
    pub reconnecting: bool,
}

/// A user's presence as one audience sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Presence {
    pub user: String,
    pub online: bool,
    /// `online`, `away`, `busy`, `invisible` (only when invisible ones are shown) or `offline`.
    pub status: String,
    pub last_seen_ms: i64,
    pub last_active_ms: i64,
    pub page: String,
    pub shopping: Option<Shopping>,
    pub location: Option<Location>,
    /// Empty in events (the log keeps them small); `device_count` still counts them.
    pub connections: Vec<ConnectionView>,
    pub device_count: usize,
    pub sequence: u64,
}

impl Presence {
    pub fn offline(user: &str, last_seen_ms: i64, last_active_ms: i64) -> Self {
        Presence {
            user: user.to_owned(),
            status: "offline".to_owned(),
            last_seen_ms,
            last_active_ms,
            ..Presence::default()
        }
    }

    /// Equal for everything an `update` event is about: status, place and what each device
    /// says. Connection ids, nodes, times and a lost socket's reconnecting are not news — a
    /// phone that reconnects within the grace period changes none of these.
    pub fn same_state(&self, other: &Presence) -> bool {
        self.online == other.online
            && self.status == other.status
            && self.page == other.page
            && self.shopping == other.shopping
            && self.location == other.location
            && devices(self) == devices(other)
    }
}

type DeviceState = (Device, String, String, Option<Shopping>, Option<Location>, String);

fn devices(presence: &Presence) -> Vec<DeviceState> {
    let mut devices: Vec<DeviceState> = presence
        .connections
        .iter()
        .map(|connection| {
            (
                connection.device.clone(),
                connection.status.clone(),
                connection.page.clone(),
                connection.shopping.clone(),
                connection.location.clone(),
                connection.quality.clone(),
            )
        })
        .collect();
    devices.sort();
    devices
}

/// How much of a user a view carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Status, place and counts, without the connections (batch reads ask for this).
    Summary,
    /// Also each shown connection.
    Connections,
}

/// Who is looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Everyone else: invisible connections do not exist.
    Others,
    /// The user themselves and admins: invisible connections are shown.
    Insiders,
}

fn effective_status(connection: &ConnectionRecord, now_ms: i64, rules: &Rules) -> Status {
    let idle = now_ms.saturating_sub(connection.active_ms) >= rules.away_after_ms;
    match connection.metas.status {
        Status::Online if idle => Status::Away,
        status => status,
    }
}

/// Online beats busy beats away beats invisible.
fn rank(status: Status) -> u8 {
    match status {
        Status::Online => 3,
        Status::Busy => 2,
        Status::Away => 1,
        Status::Invisible => 0,
    }
}

/// The record as `audience` sees it at `now_ms`.
pub fn presence(
    user: &str,
    record: &UserRecord,
    audience: Audience,
    detail: Detail,
    now_ms: i64,
    rules: &Rules,
) -> Presence {
    let shown: Vec<(&String, &ConnectionRecord)> = record
        .connections
        .iter()
        .filter(|(_, connection)| audience == Audience::Insiders || connection.is_visible())
        .collect();
    if shown.is_empty() {
        return Presence {
            sequence: record.version,
            ..Presence::offline(user, record.last_seen_ms, record.last_active_ms)
        };
    }
    let status = shown
        .iter()
        .map(|(_, connection)| effective_status(connection, now_ms, rules))
        .max_by_key(|status| rank(*status))
        .unwrap_or_default();
    let latest = shown
        .iter()
        .find(|(id, _)| **id == record.active_connection)
        .or_else(|| shown.iter().max_by_key(|(_, connection)| connection.active_ms))
        .map(|(_, connection)| *connection);
    let listed = if detail == Detail::Connections {
        shown.as_slice()
    } else {
        &[]
    };
    let connections = listed
        .iter()
        .map(|(id, connection)| ConnectionView {
            id: (*id).clone(),
            node: connection.node.clone(),
            device: connection.device.clone(),
            connected_ms: connection.connected_ms,
            active_ms: connection.active_ms,
            status: effective_status(connection, now_ms, rules).as_str().to_owned(),
            page: connection.metas.page.clone(),
            shopping: connection.metas.shopping.clone(),
            location: connection.metas.location.clone(),
            quality: connection.metas.quality.clone(),
            reconnecting: connection.lost,
        })
        .collect();
    Presence {
        user: user.to_owned(),
        online: true,
        device_count: shown.len(),
        status: status.as_str().to_owned(),
        last_seen_ms: now_ms.max(record.last_seen_ms),
        last_active_ms: record.last_active_ms,
        page: latest
            .map(|connection| connection.metas.page.clone())
            .unwrap_or_default(),
        shopping: latest.and_then(|connection| connection.metas.shopping.clone()),
        location: latest.and_then(|connection| connection.metas.location.clone()),
        connections,
        sequence: record.version,
    }
}

/// Where a user counts: the indexes a store keeps (online users, channel members, page
/// viewers) follow this, and only visible connections count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Footprint {
    pub online: bool,
    pub pages: BTreeSet<String>,
    /// Channel → the user's visible connections subscribed to it.
    pub channels: BTreeMap<String, i64>,
}

pub fn footprint(record: &UserRecord) -> Footprint {
    let mut footprint = Footprint::default();
    for connection in record.connections.values().filter(|connection| connection.is_visible()) {
        footprint.online = true;
        if !connection.metas.page.is_empty() {
            footprint.pages.insert(connection.metas.page.clone());
        }
        for channel in connection.channels.union(&connection.stale_channels) {
            *footprint.channels.entry(channel.clone()).or_default() += 1;
        }
    }
    footprint
}

/// When the record next needs attention without any report: a lost connection leaving, a
/// service's report expiring, or an `online` connection turning `away`.
pub fn next_due(record: &UserRecord, now_ms: i64, rules: &Rules) -> Option<i64> {
    record
        .connections
        .values()
        .flat_map(|connection| {
            let away = (connection.metas.status == Status::Online
                && now_ms.saturating_sub(connection.active_ms) < rules.away_after_ms)
                .then(|| connection.active_ms.saturating_add(rules.away_after_ms));
            [connection.leaves_at_ms, connection.stale_until_ms, away]
        })
        .flatten()
        .min()
}
