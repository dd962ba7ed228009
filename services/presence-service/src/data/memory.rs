//! Presence state in this process, for a single replica without Redis: the same contract
//! as the Redis store, kept under one lock (every operation is short and allocation-light).

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use tokio::sync::Notify;

use crate::biz::{
    engine::Change,
    model::{UserKey, UserRecord},
    store::{Committed, Cursor, Fetched, LogEntry, LogRead, PresenceStore, StoreError},
};

#[derive(Default)]
struct State {
    records: HashMap<UserKey, UserRecord>,
    online: HashMap<String, BTreeSet<String>>,
    members: HashMap<(String, String), BTreeSet<String>>,
    channel_connections: HashMap<(String, String), i64>,
    pages: HashMap<(String, String), i64>,
    leases: HashMap<String, i64>,
    nodes: HashMap<String, BTreeSet<(UserKey, String)>>,
    due: BTreeSet<(i64, UserKey)>,
    log: VecDeque<LogEntry>,
    /// The id of the last entry appended (or trimmed away).
    log_last: u64,
    cleanup_holder: Option<(String, i64)>,
}

pub struct MemoryStore {
    state: Mutex<State>,
    epoch: String,
    log_capacity: usize,
    appended: Notify,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("presence state lock poisoned".into())
}

impl MemoryStore {
    /// Keeps the last `log_capacity` entries of the event log.
    pub fn new(log_capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            epoch: format!("m{:016x}", rand::random::<u64>()),
            log_capacity: log_capacity.max(1),
            appended: Notify::new(),
        }
    }

    fn cursor(&self, id: u64) -> Cursor {
        Cursor {
            epoch: self.epoch.clone(),
            id: format!("{id}-0"),
        }
    }

    fn read(&self, state: &State, after: &Cursor, limit: usize) -> LogRead {
        if after.epoch != self.epoch {
            return LogRead::Gap;
        }
        let (after_id, _) = after.position();
        let first = state.log_last + 1 - state.log.len() as u64;
        if after_id + 1 < first || after_id > state.log_last {
            return LogRead::Gap;
        }
        let skip = (after_id + 1 - first) as usize;
        LogRead::Entries(state.log.iter().skip(skip).take(limit).cloned().collect())
    }
}

fn apply_change(state: &mut State, change: &Change) {
    let tenant = &change.key.tenant;
    let user = &change.key.user;
    let due_before = state.records.get(&change.key).and_then(|record| record.due_ms);
    if let Some(at) = due_before {
        state.due.remove(&(at, change.key.clone()));
    }
    match &change.after {
        Some(record) => {
            if let Some(at) = record.due_ms {
                state.due.insert((at, change.key.clone()));
            }
            state.records.insert(change.key.clone(), record.clone());
        }
        None => {
            state.records.remove(&change.key);
        }
    }
    let index = &change.index;
    if let Some(online) = index.online {
        let users = state.online.entry(tenant.clone()).or_default();
        if online {
            users.insert(user.clone());
        } else {
            users.remove(user);
        }
    }
    for (channel, member) in &index.members {
        let members = state.members.entry((tenant.clone(), channel.clone())).or_default();
        if *member {
            members.insert(user.clone());
        } else {
            members.remove(user);
        }
    }
    for (channel, delta) in &index.channel_connections {
        let count = state
            .channel_connections
            .entry((tenant.clone(), channel.clone()))
            .or_default();
        *count += delta;
    }
    for (page, delta) in &index.pages {
        let key = (tenant.clone(), page.clone());
        let count = state.pages.entry(key.clone()).or_default();
        *count += delta;
        if *count <= 0 {
            state.pages.remove(&key);
        }
    }
    for (node, connection, held) in &index.node_connections {
        let entry = (change.key.clone(), connection.clone());
        let held_here = state.nodes.entry(node.clone()).or_default();
        if *held {
            held_here.insert(entry);
        } else {
            held_here.remove(&entry);
        }
    }
}

#[async_trait::async_trait]
impl PresenceStore for MemoryStore {
    async fn fetch(&self, keys: &[UserKey], held: &[u64]) -> Result<Vec<Fetched>, StoreError> {
        let state = self.state.lock().map_err(poisoned)?;
        Ok(keys
            .iter()
            .zip(held.iter().chain(std::iter::repeat(&0)))
            .map(|(key, held)| match state.records.get(key) {
                None => Fetched::Missing,
                Some(record) if record.version == *held => Fetched::Held,
                Some(record) => Fetched::Record(record.clone()),
            })
            .collect())
    }

    async fn commit(&self, changes: &[Change]) -> Result<Committed, StoreError> {
        let mut state = self.state.lock().map_err(poisoned)?;
        let mut committed = Committed::default();
        for (position, change) in changes.iter().enumerate() {
            let stored = state.records.get(&change.key).map_or(0, |record| record.version);
            if stored != change.expected_version {
                committed.conflicts.push(position);
            }
        }
        if !committed.conflicts.is_empty() {
            return Ok(committed);
        }
        let mut diffs = Vec::new();
        for change in changes {
            apply_change(&mut state, change);
            diffs.extend(change.diffs.iter().cloned());
        }
        if !diffs.is_empty() {
            state.log_last += 1;
            let cursor = self.cursor(state.log_last);
            state.log.push_back(LogEntry {
                cursor: cursor.clone(),
                diffs,
            });
            while state.log.len() > self.log_capacity {
                state.log.pop_front();
            }
            committed.cursor = Some(cursor);
            self.appended.notify_waiters();
        }
        Ok(committed)
    }

    async fn renew_lease(&self, node: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError> {
        let mut state = self.state.lock().map_err(poisoned)?;
        let known = state.leases.contains_key(node);
        state.leases.insert(node.to_owned(), now_ms.saturating_add(ttl_ms));
        Ok(known)
    }

    async fn claim_lapsed_nodes(&self, now_ms: i64) -> Result<Vec<(String, Vec<UserKey>)>, StoreError> {
        let mut state = self.state.lock().map_err(poisoned)?;
        let lapsed: Vec<String> = state
            .leases
            .iter()
            .filter(|(_, until)| **until <= now_ms)
            .map(|(node, _)| node.clone())
            .collect();
        let mut out = Vec::new();
        for node in lapsed {
            state.leases.remove(&node);
            let users: BTreeSet<UserKey> = state
                .nodes
                .get(&node)
                .map(|held| held.iter().map(|(key, _)| key.clone()).collect())
                .unwrap_or_default();
            out.push((node, users.into_iter().collect()));
        }
        Ok(out)
    }

    async fn due_users(&self, now_ms: i64, limit: usize) -> Result<Vec<UserKey>, StoreError> {
        let state = self.state.lock().map_err(poisoned)?;
        Ok(state
            .due
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect())
    }

    async fn hold_cleanup_lock(&self, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let mut state = self.state.lock().map_err(poisoned)?;
        let now = switchyard_platform::clock::now_ms();
        let free = match &state.cleanup_holder {
            None => true,
            Some((current, until)) => current == holder || *until <= now,
        };
        if free {
            state.cleanup_holder = Some((holder.to_owned(), now.saturating_add(ttl_ms)));
        }
        Ok(free)
    }

    async fn online_users(&self, tenant: &str, after: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let state = self.state.lock().map_err(poisoned)?;
        Ok(state
            .online
            .get(tenant)
            .map(|users| after_in(users, after, limit))
            .unwrap_or_default())
    }

    async fn online_count(&self, tenant: &str) -> Result<i64, StoreError> {
        let state = self.state.lock().map_err(poisoned)?;
        Ok(state.online.get(tenant).map_or(0, |users| users.len() as i64))
    }

    async fn channel_members(
        &self,
        tenant: &str,
        channel: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let state = self.state.lock().map_err(poisoned)?;
        Ok(state
            .members
            .get(&(tenant.to_owned(), channel.to_owned()))
            .map(|users| after_in(users, after, limit))
            .unwrap_or_default())
    }

    async fn channel_stats(&self, tenant: &str, channel: &str) -> Result<(i64, i64), StoreError> {
        let state = self.state.lock().map_err(poisoned)?;
        let key = (tenant.to_owned(), channel.to_owned());
        let connections = state.channel_connections.get(&key).copied().unwrap_or(0);
        let users = state.members.get(&key).map_or(0, |users| users.len() as i64);
        Ok((connections, users))
    }

    async fn page_viewers(&self, tenant: &str, page: &str) -> Result<i64, StoreError> {
        let state = self.state.lock().map_err(poisoned)?;
        Ok(state
            .pages
            .get(&(tenant.to_owned(), page.to_owned()))
            .copied()
            .unwrap_or(0))
    }

    async fn log_head(&self) -> Result<Cursor, StoreError> {
        let state = self.state.lock().map_err(poisoned)?;
        Ok(self.cursor(state.log_last))
    }

    async fn read_log(&self, after: &Cursor, limit: usize) -> Result<LogRead, StoreError> {
        let state = self.state.lock().map_err(poisoned)?;
        Ok(self.read(&state, after, limit))
    }

    async fn wait_log(&self, after: &Cursor, wait_ms: u64) -> Result<LogRead, StoreError> {
        let appended = self.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        {
            let state = self.state.lock().map_err(poisoned)?;
            match self.read(&state, after, usize::MAX) {
                LogRead::Entries(entries) if entries.is_empty() => {}
                read => return Ok(read),
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(wait_ms), appended).await;
        let state = self.state.lock().map_err(poisoned)?;
        Ok(self.read(&state, after, usize::MAX))
    }
}

fn after_in(users: &BTreeSet<String>, after: &str, limit: usize) -> Vec<String> {
    use std::ops::Bound;
    users
        .range::<str, _>((Bound::Excluded(after), Bound::Unbounded))
        .take(limit)
        .cloned()
        .collect()
}
