//! The presence rules, as one pure function: a user's record and what happened to their
//! connections in, the new record, the index changes and the events out. Every replica runs
//! the same function on the same stored record, and a store writes the result only if the
//! record did not change meanwhile, so two replicas can never disagree about a user.
//!
//! The rules that keep presence from flapping live here: a lost connection lingers for the
//! grace period, and a reconnect from the same device adopts it (metas and channels
//! included) so that neither the user nor their channels see a leave and a join.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    model::{API_NODE, ConnectionRecord, Device, LastSeen, MetasPatch, UserKey, UserRecord},
    view::{Audience, Detail, Footprint, Presence, Rules, footprint, next_due, presence},
};

/// Something that happened to one connection of a user (or to all of them).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A connection opened, or a node resends one it holds.
    Open {
        connection: String,
        node: String,
        device: Device,
        metas: MetasPatch,
        channels: Vec<String>,
    },
    /// `clean`: the client or server closed it on purpose; otherwise it was lost.
    Close {
        connection: String,
        clean: bool,
    },
    Update {
        connection: String,
        patch: MetasPatch,
    },
    Subscribe {
        connection: String,
        channel: String,
    },
    Unsubscribe {
        connection: String,
        channel: String,
    },
    /// Client activity.
    Active {
        connection: String,
    },
    /// A service's report, lasting `ttl_ms`; `end` removes it.
    Report {
        connection: String,
        device: Device,
        patch: MetasPatch,
        ttl_ms: i64,
        end: bool,
    },
    /// The node's lease lapsed: its connections are lost.
    NodeLost {
        node: String,
    },
    /// Nothing happened; due deadlines are applied.
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    Join,
    Leave,
    Update,
}

impl DiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Join => "join",
            DiffKind::Leave => "leave",
            DiffKind::Update => "update",
        }
    }
}

/// One event: a user's (no channel) or a channel member's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub kind: DiffKind,
    pub tenant: String,
    pub user: String,
    pub channel: Option<String>,
    /// The user's presence after the change, as others see it.
    pub presence: Presence,
    pub at_ms: i64,
}

/// What a store keeps besides the records, changed by one user's change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexDelta {
    /// The user entered (true) or left (false) the tenant's online users.
    pub online: Option<bool>,
    /// Channel membership entered or left.
    pub members: Vec<(String, bool)>,
    /// Change in a channel's connection count.
    pub channel_connections: Vec<(String, i64)>,
    /// Change in a page's viewer count.
    pub pages: Vec<(String, i64)>,
    /// Connections a node gained (true) or lost (false).
    pub node_connections: Vec<(String, String, bool)>,
}

/// The result of applying ops to one user.
#[derive(Debug, Clone)]
pub struct Change {
    pub key: UserKey,
    /// The version the stored record must still have (0: none stored).
    pub expected_version: u64,
    /// None: delete the record (the user has no connection left).
    pub after: Option<UserRecord>,
    pub index: IndexDelta,
    pub diffs: Vec<Diff>,
    /// Last seen / last active to keep durably, when due (see `durable_last_seen`).
    pub last_seen: Option<LastSeen>,
    /// Whether `after`'s due time differs from the stored one (stores skip the write if not).
    pub due_changed: bool,
}

/// Applies `ops` to the user's stored record (`before`). None: nothing changed.
pub fn apply(key: &UserKey, before: Option<&UserRecord>, ops: &[Op], now_ms: i64, rules: &Rules) -> Option<Change> {
    let empty = UserRecord::default();
    let old = before.unwrap_or(&empty);
    let mut record = old.clone();
    let mut nodes = Vec::new();
    for op in ops {
        apply_op(&mut record, op, now_ms, rules, &mut nodes);
    }
    expire(&mut record, now_ms, &mut nodes);
    record.due_ms = next_due(&record, now_ms, rules);
    // What watchers were shown: the old record as it looked when it was written.
    let old_view = presence(
        &key.user,
        old,
        Audience::Others,
        Detail::Connections,
        old.changed_ms,
        rules,
    );
    let new_view = presence(&key.user, &record, Audience::Others, Detail::Connections, now_ms, rules);
    let unchanged = record == *old && old_view.same_state(&new_view);
    if unchanged {
        return None;
    }
    if !record.connections.is_empty() || !old.connections.is_empty() {
        record.last_seen_ms = now_ms;
    }
    record.version = next_version(old.version, now_ms);
    record.changed_ms = now_ms;
    let new_view = Presence {
        sequence: record.version,
        ..new_view
    };
    let old_print = footprint(old);
    let new_print = footprint(&record);
    let mut index = index_delta(&old_print, &new_print);
    index.node_connections = nodes;
    let diffs = diffs(key, &old_view, &new_view, &old_print, &new_print, now_ms);
    let last_seen = durable_last_seen(&mut record, old.saved_ms, now_ms, rules);
    let due_changed = record.due_ms != old.due_ms || record.connections.is_empty();
    let after = (!record.connections.is_empty()).then_some(record);
    Some(Change {
        key: key.clone(),
        expected_version: old.version,
        after,
        index,
        diffs,
        last_seen,
        due_changed,
    })
}

/// The version after `version` (0: no record). A user's first record starts from the clock,
/// not from 1: a record deleted when the user left and created again when they returned
/// would otherwise repeat versions, and a replica holding the old record (or a client
/// holding its sequence) could take the new one for it. Starting at `now_ms << 10` keeps
/// versions increasing across a user's visits (a visit makes fewer than 1,024 changes per
/// millisecond) and below 2^53, so they stay exact as JSON numbers.
fn next_version(version: u64, now_ms: i64) -> u64 {
    match version {
        0 => (now_ms.max(0) as u64) << 10,
        version => version + 1,
    }
}

/// What to write to the database, which answers for users gone from Redis: the times of a
/// user first seen here (so every replica knows them at once) or who just went offline,
/// and of one who stays online at most every `last_seen_refresh_ms`.
fn durable_last_seen(record: &mut UserRecord, saved_ms: i64, now_ms: i64, rules: &Rules) -> Option<LastSeen> {
    let due =
        saved_ms == 0 || record.connections.is_empty() || now_ms.saturating_sub(saved_ms) >= rules.last_seen_refresh_ms;
    if !due {
        return None;
    }
    record.saved_ms = now_ms;
    Some(LastSeen {
        seen_ms: record.last_seen_ms,
        active_ms: record.last_active_ms,
    })
}

fn apply_op(record: &mut UserRecord, op: &Op, now_ms: i64, rules: &Rules, nodes: &mut Vec<(String, String, bool)>) {
    match op {
        Op::Open {
            connection,
            node,
            device,
            metas,
            channels,
        } => open(record, connection, node, device, metas, channels, now_ms, rules, nodes),
        Op::Close { connection, clean } => {
            if *clean || reconnected(record, connection) {
                remove(record, connection, nodes);
            } else if let Some(lost) = record.connections.get_mut(connection) {
                lost.lost = true;
                lost.leaves_at_ms = Some(now_ms.saturating_add(rules.offline_grace_ms));
            }
        }
        Op::Update { connection, patch } => {
            if let Some(target) = record.connections.get_mut(connection) {
                patch.apply_to(&mut target.metas);
                target.active_ms = now_ms;
                record.last_active_ms = now_ms;
                record.active_connection.clone_from(connection);
            }
        }
        Op::Subscribe { connection, channel } => {
            if let Some(target) = record.connections.get_mut(connection) {
                target.stale_channels.remove(channel);
                target.channels.insert(channel.clone());
            }
        }
        Op::Unsubscribe { connection, channel } => {
            if let Some(target) = record.connections.get_mut(connection) {
                target.stale_channels.remove(channel);
                target.channels.remove(channel);
            }
        }
        Op::Active { connection } => {
            if let Some(target) = record.connections.get_mut(connection) {
                target.active_ms = now_ms;
                record.last_active_ms = now_ms;
                record.active_connection.clone_from(connection);
            }
        }
        Op::Report {
            connection,
            device,
            patch,
            ttl_ms,
            end,
        } => report(record, connection, device, patch, *ttl_ms, *end, now_ms, nodes),
        Op::NodeLost { node } => {
            let deadline = now_ms.saturating_add(rules.offline_grace_ms);
            for (_, connection) in record
                .connections
                .iter_mut()
                .filter(|(_, c)| c.node == *node && !c.lost)
            {
                connection.lost = true;
                connection.leaves_at_ms = Some(deadline);
            }
        }
        Op::Tick => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn open(
    record: &mut UserRecord,
    connection: &str,
    node: &str,
    device: &Device,
    metas: &MetasPatch,
    channels: &[String],
    now_ms: i64,
    rules: &Rules,
    nodes: &mut Vec<(String, String, bool)>,
) {
    if let Some(existing) = record.connections.get_mut(connection) {
        // A node resending what it holds: the connection is back, whatever happened.
        existing.lost = false;
        existing.leaves_at_ms = None;
        metas.apply_to(&mut existing.metas);
        existing.channels.extend(channels.iter().cloned());
        if existing.node != node {
            nodes.push((existing.node.clone(), connection.to_owned(), false));
            nodes.push((node.to_owned(), connection.to_owned(), true));
            existing.node = node.to_owned();
        }
        return;
    }
    let mut fresh = ConnectionRecord {
        node: node.to_owned(),
        device: device.clone(),
        connected_ms: now_ms,
        active_ms: now_ms,
        metas: Default::default(),
        channels: channels.iter().cloned().collect(),
        stale_channels: BTreeSet::new(),
        stale_until_ms: None,
        leaves_at_ms: None,
        lost: false,
    };
    if let Some(adopted) = adoptable(record, device) {
        // The same device back within the grace period: it takes the lost connection's
        // place. Channels it does not resubscribe to within the grace period leave then.
        if let Some(lost) = record.connections.remove(&adopted) {
            nodes.push((lost.node.clone(), adopted, false));
            fresh.connected_ms = lost.connected_ms;
            fresh.metas = lost.metas;
            fresh.stale_channels = lost.channels.difference(&fresh.channels).cloned().collect();
            fresh.stale_until_ms = Some(now_ms.saturating_add(rules.offline_grace_ms));
        }
    }
    metas.apply_to(&mut fresh.metas);
    record.last_active_ms = now_ms;
    record.active_connection = connection.to_owned();
    nodes.push((node.to_owned(), connection.to_owned(), true));
    record.connections.insert(connection.to_owned(), fresh);
}

/// Whether the device of a connection being lost is already back on another connection
/// (its reconnect was reported before the loss): then nothing needs to linger.
fn reconnected(record: &UserRecord, connection: &str) -> bool {
    let Some(lost) = record.connections.get(connection) else {
        return false;
    };
    !lost.device.id.is_empty()
        && record
            .connections
            .iter()
            .any(|(id, other)| id != connection && !other.lost && other.device.id == lost.device.id)
}

/// A lost connection of the same device, which a new connection takes over.
fn adoptable(record: &UserRecord, device: &Device) -> Option<String> {
    if device.id.is_empty() {
        return None;
    }
    record
        .connections
        .iter()
        .find(|(_, connection)| connection.lost && connection.device.id == device.id)
        .map(|(id, _)| id.clone())
}

#[allow(clippy::too_many_arguments)]
fn report(
    record: &mut UserRecord,
    connection: &str,
    device: &Device,
    patch: &MetasPatch,
    ttl_ms: i64,
    end: bool,
    now_ms: i64,
    nodes: &mut Vec<(String, String, bool)>,
) {
    if end {
        remove(record, connection, nodes);
        return;
    }
    let entry = record
        .connections
        .entry(connection.to_owned())
        .or_insert_with(|| ConnectionRecord {
            node: API_NODE.to_owned(),
            device: device.clone(),
            connected_ms: now_ms,
            active_ms: now_ms,
            metas: Default::default(),
            channels: BTreeSet::new(),
            stale_channels: BTreeSet::new(),
            stale_until_ms: None,
            leaves_at_ms: None,
            lost: false,
        });
    patch.apply_to(&mut entry.metas);
    entry.device = device.clone();
    entry.active_ms = now_ms;
    entry.leaves_at_ms = Some(now_ms.saturating_add(ttl_ms));
    record.last_active_ms = now_ms;
    record.active_connection = connection.to_owned();
}

fn remove(record: &mut UserRecord, connection: &str, nodes: &mut Vec<(String, String, bool)>) {
    if let Some(gone) = record.connections.remove(connection)
        && gone.node != API_NODE
    {
        nodes.push((gone.node, connection.to_owned(), false));
    }
}

/// Connections whose time is up leave; adopted channels not resubscribed in time leave.
fn expire(record: &mut UserRecord, now_ms: i64, nodes: &mut Vec<(String, String, bool)>) {
    let due: Vec<String> = record
        .connections
        .iter()
        .filter(|(_, connection)| connection.leaves_at_ms.is_some_and(|at| at <= now_ms))
        .map(|(id, _)| id.clone())
        .collect();
    for connection in due {
        remove(record, &connection, nodes);
    }
    for (_, connection) in record.connections.iter_mut() {
        if connection.stale_until_ms.is_some_and(|at| at <= now_ms) {
            connection.stale_channels.clear();
            connection.stale_until_ms = None;
        }
    }
}

fn index_delta(old: &Footprint, new: &Footprint) -> IndexDelta {
    let mut delta = IndexDelta {
        online: (old.online != new.online).then_some(new.online),
        ..IndexDelta::default()
    };
    for page in old.pages.difference(&new.pages) {
        delta.pages.push((page.clone(), -1));
    }
    for page in new.pages.difference(&old.pages) {
        delta.pages.push((page.clone(), 1));
    }
    let channels: BTreeSet<&String> = old.channels.keys().chain(new.channels.keys()).collect();
    for channel in channels {
        let before = old.channels.get(channel).copied().unwrap_or(0);
        let after = new.channels.get(channel).copied().unwrap_or(0);
        if before != after {
            delta.channel_connections.push((channel.clone(), after - before));
        }
        if (before > 0) != (after > 0) {
            delta.members.push((channel.clone(), after > 0));
        }
    }
    delta
}

fn diffs(
    key: &UserKey,
    old_view: &Presence,
    new_view: &Presence,
    old_print: &Footprint,
    new_print: &Footprint,
    now_ms: i64,
) -> Vec<Diff> {
    let user_kind = match (old_view.online, new_view.online) {
        (false, true) => Some(DiffKind::Join),
        (true, false) => Some(DiffKind::Leave),
        (true, true) if !old_view.same_state(new_view) => Some(DiffKind::Update),
        _ => None,
    };
    // Events carry the user's state without the per-connection list, which GetPresence has:
    // the log holds many of them.
    let summary = Presence {
        connections: Vec::new(),
        ..new_view.clone()
    };
    let diff = |kind, channel: Option<&String>| Diff {
        kind,
        tenant: key.tenant.clone(),
        user: key.user.clone(),
        channel: channel.cloned(),
        presence: summary.clone(),
        at_ms: now_ms,
    };
    let mut out = Vec::new();
    if let Some(kind) = user_kind {
        out.push(diff(kind, None));
    }
    let channels: BTreeSet<&String> = old_print.channels.keys().chain(new_print.channels.keys()).collect();
    for channel in channels {
        let before = old_print.channels.contains_key(channel);
        let after = new_print.channels.contains_key(channel);
        let kind = match (before, after) {
            (false, true) => DiffKind::Join,
            (true, false) => DiffKind::Leave,
            (true, true) if user_kind == Some(DiffKind::Update) => DiffKind::Update,
            _ => continue,
        };
        out.push(diff(kind, Some(channel)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        offline_grace_ms: 10_000,
        away_after_ms: 300_000,
        last_seen_refresh_ms: 60_000,
    };

    fn page(page: &str) -> Op {
        Op::Update {
            connection: "c1".to_owned(),
            patch: MetasPatch {
                page: Some(page.to_owned()),
                ..MetasPatch::default()
            },
        }
    }

    /// Applies `op` at `now_ms` and returns the new record and what goes to the database.
    fn step(record: Option<UserRecord>, op: Op, now_ms: i64) -> (Option<UserRecord>, Option<LastSeen>) {
        let key = UserKey::new("t", "u1");
        let change = apply(&key, record.as_ref(), &[op], now_ms, &RULES).expect("a change");
        (change.after, change.last_seen)
    }

    #[test]
    fn a_returning_user_never_repeats_a_version_of_an_earlier_visit() {
        let open = || Op::Open {
            connection: "c1".to_owned(),
            node: "n1".to_owned(),
            device: Device::default(),
            metas: MetasPatch::default(),
            channels: Vec::new(),
        };
        let close = Op::Close {
            connection: "c1".to_owned(),
            clean: true,
        };
        let key = UserKey::new("t", "u1");
        let first = apply(&key, None, &[open()], 1_000, &RULES).expect("joined");
        let record = first.after.expect("online");
        let moved = apply(&key, Some(&record), &[page("/a")], 1_001, &RULES).expect("moved");
        let record = moved.after.expect("online");
        let left = apply(&key, Some(&record), &[close], 1_002, &RULES).expect("left");
        assert_eq!(left.after, None);
        let back = apply(&key, None, &[open()], 1_003, &RULES).expect("back");
        let versions = [
            first.diffs[0].presence.sequence,
            record.version,
            back.after.expect("online").version,
        ];
        assert!(versions[0] < versions[1] && versions[1] < versions[2], "{versions:?}");
        assert!(versions[2] < 1 << 53, "exact in JSON");
    }

    #[test]
    fn the_database_hears_of_a_user_when_first_seen_gone_and_once_a_refresh_while_online() {
        let open = Op::Open {
            connection: "c1".to_owned(),
            node: "n1".to_owned(),
            device: Device::default(),
            metas: MetasPatch::default(),
            channels: Vec::new(),
        };
        let (record, saved) = step(None, open, 1_000);
        assert!(saved.is_some(), "first seen: every replica must know the user");
        let (record, saved) = step(record, page("/a"), 2_000);
        assert_eq!(saved, None, "online and written a second ago");
        let (record, saved) = step(record, page("/b"), 61_000);
        assert_eq!(saved.map(|seen| seen.active_ms), Some(61_000), "a refresh is due");
        let (record, saved) = step(record, page("/c"), 62_000);
        assert_eq!(saved, None);
        let close = Op::Close {
            connection: "c1".to_owned(),
            clean: true,
        };
        let (record, saved) = step(record, close, 63_000);
        assert_eq!(record, None);
        assert_eq!(
            saved,
            Some(LastSeen {
                seen_ms: 63_000,
                active_ms: 62_000
            }),
            "gone: the final times"
        );
    }
}
