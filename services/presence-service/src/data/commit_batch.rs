//! How a batch of changes becomes the arguments of `lua/commit.lua`. Rust groups every write
//! by key (one HSET of all a tenant's records, one ZADD of all due times, …) so the script
//! only checks versions and issues one command per key: work done in a Redis script is work
//! every replica waits for. A batch is thousands of arguments, so they are written straight
//! into the command's buffer and each key is spelled once per batch, not once per change.
//!
//! Arguments: prefix, log max length, candidate epoch; the version checks (tenant count,
//! then per tenant: tenant, user count, the users, then each one's expected `<version>:`
//! prefix or "" for none);
//! the write commands (count, then per command: name, key, argument count, arguments);
//! the counters (count, then key and delta each: the script deletes one that reaches 0);
//! the events (the batch's diffs in postcard, or "").

use std::{borrow::Cow, collections::BTreeMap};

use super::keys::Key;
use crate::biz::{
    engine::{Change, Diff},
    model::UserRecord,
    store::StoreError,
};

/// Members of one sorted set or set, the last word on each winning.
#[derive(Default)]
struct Membership<'a> {
    sorted: bool,
    members: BTreeMap<Cow<'a, [u8]>, bool>,
}

/// A due time the change leaves alone.
fn due_of(change: &Change) -> Option<Option<i64>> {
    if !change.due_changed {
        return None;
    }
    Some(change.after.as_ref().and_then(|record| record.due_ms))
}

/// Everything a batch writes, grouped by key.
#[derive(Default)]
struct Writes<'a> {
    checks: BTreeMap<&'a str, Vec<(usize, &'a Change)>>,
    records: BTreeMap<&'a str, Vec<(&'a str, Vec<u8>)>>,
    deleted: BTreeMap<&'a str, Vec<&'a str>>,
    due_add: Vec<(i64, Vec<u8>)>,
    due_remove: Vec<Vec<u8>>,
    sets: BTreeMap<Key<'a>, Membership<'a>>,
    counters: BTreeMap<Key<'a>, i64>,
    diffs: Vec<&'a Diff>,
}

impl<'a> Writes<'a> {
    fn add(
        &mut self,
        index: usize,
        change: &'a Change,
        record: &impl Fn(&UserRecord) -> Result<Vec<u8>, StoreError>,
    ) -> Result<(), StoreError> {
        let (tenant, user) = (change.key.tenant.as_str(), change.key.user.as_str());
        self.checks.entry(tenant).or_default().push((index, change));
        match &change.after {
            Some(stored) => self.records.entry(tenant).or_default().push((user, record(stored)?)),
            None => self.deleted.entry(tenant).or_default().push(user),
        }
        let member = || format!("{tenant}\u{1f}{user}").into_bytes();
        match due_of(change) {
            None => {}
            Some(Some(at)) => self.due_add.push((at, member())),
            Some(None) => self.due_remove.push(member()),
        }
        let delta = &change.index;
        if let Some(online) = delta.online {
            self.set(Key::Online(tenant), true, Cow::Borrowed(user.as_bytes()), online);
        }
        for (channel, joined) in &delta.members {
            self.set(
                Key::Members(tenant, channel),
                true,
                Cow::Borrowed(user.as_bytes()),
                *joined,
            );
        }
        for (node, connection, held) in &delta.node_connections {
            let member = format!("{tenant}\u{1f}{user}\u{1f}{connection}").into_bytes();
            self.set(Key::Node(node), false, Cow::Owned(member), *held);
        }
        for (channel, change) in &delta.channel_connections {
            *self
                .counters
                .entry(Key::ChannelConnections(tenant, channel))
                .or_default() += change;
        }
        for (page, change) in &delta.pages {
            *self.counters.entry(Key::PageViewers(tenant, page)).or_default() += change;
        }
        self.diffs.extend(&change.diffs);
        Ok(())
    }

    fn set(&mut self, key: Key<'a>, sorted: bool, member: Cow<'a, [u8]>, on: bool) {
        let set = self.sets.entry(key).or_default();
        set.sorted = sorted;
        set.members.insert(member, on);
    }
}

/// The write commands, each as name, key and arguments.
struct Command<'a> {
    name: &'static str,
    key: Key<'a>,
    args: Vec<&'a [u8]>,
}

/// Appends the script's arguments for `changes` to `command` (an `EVALSHA sha 0`); `record`
/// encodes a stored record. Returns the change checked at each position, to read the
/// script's conflicts by.
pub fn encode(
    command: &mut redis::Cmd,
    prefix: &str,
    log_max_len: usize,
    epoch: &str,
    changes: &[Change],
    record: impl Fn(&UserRecord) -> Result<Vec<u8>, StoreError>,
) -> Result<Vec<usize>, StoreError> {
    let mut writes = Writes::default();
    for (index, change) in changes.iter().enumerate() {
        writes.add(index, change, &record)?;
    }
    let key = |key: Key<'_>| format!("{prefix}{key}");

    command.arg(prefix).arg(log_max_len).arg(epoch).arg(writes.checks.len());
    let mut checked = Vec::with_capacity(changes.len());
    for (tenant, users) in &writes.checks {
        command.arg(*tenant).arg(users.len());
        for (index, change) in users {
            command.arg(change.key.user.as_str());
            checked.push(*index);
        }
        for (_, change) in users {
            match change.expected_version {
                0 => command.arg(""),
                version => command.arg(format!("{version}:")),
            };
        }
    }

    let due_scores: Vec<String> = writes.due_add.iter().map(|(at, _)| at.to_string()).collect();
    let mut commands: Vec<Command<'_>> = Vec::new();
    for (tenant, fields) in &writes.records {
        let args = fields
            .iter()
            .flat_map(|(user, value)| [user.as_bytes(), value.as_slice()])
            .collect();
        commands.push(Command {
            name: "HSET",
            key: Key::Records(tenant),
            args,
        });
    }
    for (tenant, users) in &writes.deleted {
        let args = users.iter().map(|user| user.as_bytes()).collect();
        commands.push(Command {
            name: "HDEL",
            key: Key::Records(tenant),
            args,
        });
    }
    if !writes.due_add.is_empty() {
        let args = due_scores
            .iter()
            .zip(&writes.due_add)
            .flat_map(|(score, (_, member))| [score.as_bytes(), member.as_slice()])
            .collect();
        commands.push(Command {
            name: "ZADD",
            key: Key::Due,
            args,
        });
    }
    if !writes.due_remove.is_empty() {
        let args = writes.due_remove.iter().map(Vec::as_slice).collect();
        commands.push(Command {
            name: "ZREM",
            key: Key::Due,
            args,
        });
    }
    for (set_key, set) in &writes.sets {
        let (mut added, mut removed): (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
        for (member, on) in &set.members {
            if !on {
                removed.push(member);
                continue;
            }
            if set.sorted {
                added.push(b"0");
            }
            added.push(member);
        }
        let (add, remove) = if set.sorted { ("ZADD", "ZREM") } else { ("SADD", "SREM") };
        if !added.is_empty() {
            commands.push(Command {
                name: add,
                key: *set_key,
                args: added,
            });
        }
        if !removed.is_empty() {
            commands.push(Command {
                name: remove,
                key: *set_key,
                args: removed,
            });
        }
    }
    command.arg(commands.len());
    for written in &commands {
        command.arg(written.name).arg(key(written.key)).arg(written.args.len());
        for arg in &written.args {
            command.arg(*arg);
        }
    }

    let counters: Vec<(&Key<'_>, &i64)> = writes.counters.iter().filter(|(_, delta)| **delta != 0).collect();
    command.arg(counters.len());
    for (counter, delta) in counters {
        command.arg(key(*counter)).arg(*delta);
    }
    if writes.diffs.is_empty() {
        command.arg("");
    } else {
        let events = postcard::to_allocvec(&writes.diffs).map_err(|error| StoreError::Corrupt(error.to_string()))?;
        command.arg(events);
    }
    Ok(checked)
}

/// Reads what `encode` wrote as a batch's events.
pub fn decode_events(events: &[u8]) -> Result<Vec<Diff>, StoreError> {
    postcard::from_bytes(events).map_err(|error| StoreError::Corrupt(error.to_string()))
}
