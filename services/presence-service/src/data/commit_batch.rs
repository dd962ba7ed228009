//! How a batch of changes becomes the arguments of `lua/commit.lua`. Rust groups every write
//! by key (one HSET of all a tenant's records, one ZADD of all due times, …) so the script
//! only checks versions and issues one command per key: work done in a Redis script is work
//! every replica waits for.
//!
//! Arguments: prefix, log max length, candidate epoch; the version checks (tenant count,
//! then per tenant: tenant, user count, users × (user, expected version, change index));
//! the write commands (count, then per command: name, key, argument count, arguments);
//! the counters (count, then key and delta each: the script deletes one that reaches 0);
//! the events (a JSON array, or "").

use std::collections::{BTreeMap, HashMap};

use crate::biz::{engine::Change, store::StoreError};

/// One write of the script: command name, key, arguments.
type Command = (&'static str, Vec<u8>, Vec<Vec<u8>>);

/// A due time the change leaves alone.
fn due_of(change: &Change) -> Option<Option<i64>> {
    if !change.due_changed {
        return None;
    }
    Some(change.after.as_ref().and_then(|record| record.due_ms))
}

/// Members of one sorted set or set, the last word on each winning.
#[derive(Default)]
struct Membership {
    sorted: bool,
    members: Vec<(Vec<u8>, bool)>,
    index: HashMap<Vec<u8>, usize>,
}

impl Membership {
    fn set(&mut self, member: Vec<u8>, on: bool) {
        match self.index.get(&member) {
            Some(slot) => self.members[*slot].1 = on,
            None => {
                self.index.insert(member.clone(), self.members.len());
                self.members.push((member, on));
            }
        }
    }
}

/// Encodes `changes` for the commit script; `record` encodes a stored record.
pub fn encode(
    prefix: &str,
    log_max_len: usize,
    epoch: &str,
    changes: &[Change],
    record: impl Fn(&crate::biz::model::UserRecord) -> Result<Vec<u8>, StoreError>,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let key = |name: String| format!("{prefix}{name}").into_bytes();
    let mut checks: BTreeMap<&str, Vec<(usize, &Change)>> = BTreeMap::new();
    let mut hset: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    let mut hdel: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    let (mut due_add, mut due_remove) = (Vec::new(), Vec::new());
    let mut sets: BTreeMap<Vec<u8>, Membership> = BTreeMap::new();
    let mut counters: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    let mut events: Vec<u8> = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        let (tenant, user) = (change.key.tenant.as_str(), change.key.user.as_str());
        checks.entry(tenant).or_default().push((index, change));
        match &change.after {
            Some(stored) => hset
                .entry(tenant)
                .or_default()
                .extend([user.as_bytes().to_vec(), record(stored)?]),
            None => hdel.entry(tenant).or_default().push(user.as_bytes().to_vec()),
        }
        let member = format!("{tenant}\u{1f}{user}");
        match due_of(change) {
            None => {}
            Some(Some(at)) => due_add.extend([at.to_string().into_bytes(), member.clone().into_bytes()]),
            Some(None) => due_remove.push(member.clone().into_bytes()),
        }
        let index_of = &change.index;
        if let Some(online) = index_of.online {
            let set = sets.entry(key(format!("on:{tenant}"))).or_default();
            set.sorted = true;
            set.set(user.as_bytes().to_vec(), online);
        }
        for (channel, joined) in &index_of.members {
            let set = sets.entry(key(format!("cm:{tenant}:{channel}"))).or_default();
            set.sorted = true;
            set.set(user.as_bytes().to_vec(), *joined);
        }
        for (node, connection, held) in &index_of.node_connections {
            let set = sets.entry(key(format!("n:{node}"))).or_default();
            set.set(format!("{member}\u{1f}{connection}").into_bytes(), *held);
        }
        for (channel, delta) in &index_of.channel_connections {
            *counters.entry(key(format!("cc:{tenant}:{channel}"))).or_default() += delta;
        }
        for (page, delta) in &index_of.pages {
            *counters.entry(key(format!("pv:{tenant}:{page}"))).or_default() += delta;
        }
        if !change.diffs.is_empty() {
            let json = serde_json::to_vec(&change.diffs).map_err(|error| StoreError::Corrupt(error.to_string()))?;
            events.push(if events.is_empty() { b'[' } else { b',' });
            // The items of this change's array.
            events.extend_from_slice(&json[1..json.len() - 1]);
        }
    }
    if !events.is_empty() {
        events.push(b']');
    }

    let mut args: Vec<Vec<u8>> = vec![
        prefix.as_bytes().to_vec(),
        log_max_len.to_string().into_bytes(),
        epoch.as_bytes().to_vec(),
        checks.len().to_string().into_bytes(),
    ];
    for (tenant, users) in &checks {
        args.push(tenant.as_bytes().to_vec());
        args.push(users.len().to_string().into_bytes());
        for (index, change) in users {
            args.push(change.key.user.as_bytes().to_vec());
            args.push(change.expected_version.to_string().into_bytes());
            args.push(index.to_string().into_bytes());
        }
    }
    let mut commands: Vec<Command> = Vec::new();
    for (tenant, fields) in hset {
        commands.push(("HSET", key(format!("u:{tenant}")), fields));
    }
    for (tenant, users) in hdel {
        commands.push(("HDEL", key(format!("u:{tenant}")), users));
    }
    if !due_add.is_empty() {
        commands.push(("ZADD", key("due".to_owned()), due_add));
    }
    if !due_remove.is_empty() {
        commands.push(("ZREM", key("due".to_owned()), due_remove));
    }
    for (set_key, set) in sets {
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (member, on) in set.members {
            if !on {
                removed.push(member);
                continue;
            }
            if set.sorted {
                added.push(b"0".to_vec());
            }
            added.push(member);
        }
        let (add, remove) = if set.sorted { ("ZADD", "ZREM") } else { ("SADD", "SREM") };
        if !added.is_empty() {
            commands.push((add, set_key.clone(), added));
        }
        if !removed.is_empty() {
            commands.push((remove, set_key, removed));
        }
    }
    args.push(commands.len().to_string().into_bytes());
    for (name, command_key, command_args) in commands {
        args.push(name.as_bytes().to_vec());
        args.push(command_key);
        args.push(command_args.len().to_string().into_bytes());
        args.extend(command_args);
    }
    let counters: Vec<(Vec<u8>, i64)> = counters.into_iter().filter(|(_, delta)| *delta != 0).collect();
    args.push(counters.len().to_string().into_bytes());
    for (counter, delta) in counters {
        args.push(counter);
        args.push(delta.to_string().into_bytes());
    }
    args.push(events);
    Ok(args)
}
