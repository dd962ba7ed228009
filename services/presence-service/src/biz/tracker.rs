//! The use cases on presence state: apply what gateways and services report, clean up what
//! lapsed, and answer queries. Changes follow one loop — load the records, run the engine,
//! commit if nobody changed them meanwhile, redo the ones that raced — so any number of
//! replicas can apply reports at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use switchyard_platform::clock::now_ms;

use super::{
    engine::{self, Op},
    error::{PresenceError, PresenceResult},
    model::{LastSeen, UserKey, UserRecord},
    record_cache::RecordCache,
    store::{Cursor, Fetched, LastSeenRepository, PresenceStore},
    view::{Audience, Detail, Presence, Rules, footprint, presence},
};

/// How often one batch is recomputed after losing races before the caller is told to retry.
const MAX_ATTEMPTS: usize = 16;
/// Due users handled per cleanup round trip.
const DUE_BATCH: usize = 1_000;
/// Online users a filtered listing looks at per call at most; the page token continues.
const MAX_SCANNED: usize = 20_000;

/// What a filtered listing of online users keeps.
#[derive(Debug, Clone, Default)]
pub struct OnlineFilter {
    pub page_prefix: String,
    pub viewing_product: String,
    pub in_checkout: bool,
    pub device_type: String,
    pub country: String,
}

impl OnlineFilter {
    fn is_empty(&self) -> bool {
        self.page_prefix.is_empty()
            && self.viewing_product.is_empty()
            && !self.in_checkout
            && self.device_type.is_empty()
            && self.country.is_empty()
    }

    /// Whether `presence` passes; every user does when nothing is asked for, even one listed
    /// without connections.
    fn keeps(&self, presence: &Presence) -> bool {
        if self.is_empty() {
            return true;
        }
        presence.connections.iter().any(|connection| {
            let shopping = connection.shopping.clone().unwrap_or_default();
            let country = connection.location.as_ref().map(|l| l.country.as_str()).unwrap_or("");
            connection.page.starts_with(&self.page_prefix)
                && (self.viewing_product.is_empty() || shopping.viewing_product == self.viewing_product)
                && (!self.in_checkout || shopping.in_checkout)
                && (self.device_type.is_empty() || connection.device.kind == self.device_type)
                && (self.country.is_empty() || country.eq_ignore_ascii_case(&self.country))
        })
    }
}

/// A page of online users.
#[derive(Debug, Default)]
pub struct OnlinePage {
    pub users: Vec<Presence>,
    pub count: i64,
    /// The last user id looked at, when there may be more.
    pub next_after: Option<String>,
}

/// A channel member as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: String,
    pub connections: i64,
    pub status: String,
}

pub struct Tracker {
    store: Arc<dyn PresenceStore>,
    last_seen: Arc<dyn LastSeenRepository>,
    pub rules: Rules,
    cache: RecordCache,
    /// Last seen / last active not yet written to the database.
    unsaved: Mutex<foldhash::HashMap<UserKey, LastSeen>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// `cached_records`: how many records this replica keeps after writing them (0: none).
    pub fn new(
        store: Arc<dyn PresenceStore>,
        last_seen: Arc<dyn LastSeenRepository>,
        rules: Rules,
        cached_records: usize,
    ) -> Self {
        Self {
            store,
            last_seen,
            rules,
            cache: RecordCache::new(cached_records),
            unsaved: Mutex::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn PresenceStore> {
        &self.store
    }

    /// Applies ops, in order per user; a batch that raced with another replica on some user
    /// is recomputed from the records as they are now. Returns the log position of the
    /// events written, if any.
    pub async fn apply(&self, ops: Vec<(UserKey, Op)>) -> PresenceResult<Option<Cursor>> {
        let mut index: foldhash::HashMap<UserKey, usize> = foldhash::HashMap::default();
        let mut users: Vec<(UserKey, Vec<Op>)> = Vec::new();
        for (key, op) in ops {
            match index.get(&key) {
                Some(slot) => users[*slot].1.push(op),
                None => {
                    index.insert(key.clone(), users.len());
                    users.push((key, vec![op]));
                }
            }
        }
        if users.is_empty() {
            return Ok(None);
        }
        let keys: Vec<UserKey> = users.iter().map(|(key, _)| key.clone()).collect();
        let mut conflicts = 0;
        for _ in 0..MAX_ATTEMPTS {
            let records = self.records_for_write(&keys).await?;
            let now = now_ms();
            let mut changes: Vec<engine::Change> = Vec::with_capacity(users.len());
            for ((key, ops), record) in users.iter().zip(records) {
                match engine::apply(key, record.as_deref(), ops, now, &self.rules) {
                    Some(change) => changes.push(change),
                    // Unchanged: the record goes back to the cache as it was read.
                    None => self.cache.put(key.clone(), record),
                }
            }
            if changes.is_empty() {
                return Ok(None);
            }
            let committed = self.store.commit(&changes).await?;
            if !committed.conflicts.is_empty() {
                // Nothing was written (and the records taken from the cache are gone from
                // it): read them again and redo the batch.
                conflicts = committed.conflicts.len();
                continue;
            }
            self.remember(&changes);
            for change in changes {
                self.cache.put(change.key, change.after.map(Arc::new));
            }
            return Ok(committed.cursor);
        }
        Err(PresenceError::Contention(conflicts))
    }

    /// The records to change: from the cache where this replica wrote them last, else the store.
    async fn records_for_write(&self, keys: &[UserKey]) -> PresenceResult<Vec<Option<Arc<UserRecord>>>> {
        let cached = self.cache.take_many(keys);
        let missing: Vec<UserKey> = keys
            .iter()
            .zip(&cached)
            .filter(|(_, cached)| cached.is_none())
            .map(|(key, _)| key.clone())
            .collect();
        let mut loaded = self.store.load(&missing).await?.into_iter();
        Ok(cached
            .into_iter()
            .map(|cached| cached.or_else(|| loaded.next().flatten().map(Arc::new)))
            .collect())
    }

    /// The records to show: those this replica holds at the stored version are not decoded
    /// again.
    async fn records_for_read(&self, keys: &[UserKey]) -> PresenceResult<Vec<Option<Arc<UserRecord>>>> {
        let held = self.cache.peek_many(keys);
        let versions: Vec<u64> = held
            .iter()
            .map(|record| record.as_ref().map_or(0, |record| record.version))
            .collect();
        let fetched = self.store.fetch(keys, &versions).await?;
        Ok(fetched
            .into_iter()
            .zip(held)
            .zip(keys)
            .map(|((fetched, held), key)| match fetched {
                Fetched::Missing => None,
                Fetched::Held => held,
                Fetched::Record(record) => {
                    let record = Arc::new(record);
                    self.cache.offer(key.clone(), record.clone());
                    Some(record)
                }
            })
            .collect())
    }

    fn remember(&self, changes: &[engine::Change]) {
        let Ok(mut unsaved) = self.unsaved.lock() else {
            return;
        };
        for change in changes {
            if let Some(seen) = change.last_seen {
                unsaved.insert(change.key.clone(), seen);
            }
        }
    }

    /// Writes last seen / last active gathered since the last call to the database.
    pub async fn save_last_seen(&self) -> PresenceResult<usize> {
        let batch: Vec<(UserKey, LastSeen)> = match self.unsaved.lock() {
            Ok(mut unsaved) => unsaved.drain().collect(),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(error) = self.last_seen.save(&batch).await {
            // Keep them for the next attempt rather than lose them.
            if let Ok(mut unsaved) = self.unsaved.lock() {
                for (key, seen) in batch {
                    unsaved.entry(key).or_insert(seen);
                }
            }
            return Err(error.into());
        }
        Ok(batch.len())
    }

    /// Renews a node's lease; false: the node must resend its connections.
    pub async fn renew(&self, node: &str, ttl_ms: i64) -> PresenceResult<bool> {
        let known = self.store.renew_lease(node, ttl_ms, now_ms()).await?;
        if !known {
            // The node resends what it holds; replays that change nothing must be written
            // anyway if the store lost them, so nothing cached may stand in for the store.
            self.cache.clear();
        }
        Ok(known)
    }

    /// Takes lapsed nodes' connections offline (after the grace period) and applies due
    /// deadlines. Run by the one replica holding the cleanup lock.
    pub async fn clean_up(&self) -> PresenceResult<usize> {
        let now = now_ms();
        let mut handled = 0;
        for (node, users) in self.store.claim_lapsed_nodes(now).await? {
            tracing::info!(node, users = users.len(), "gateway node lease lapsed");
            handled += users.len();
            let ops = users
                .into_iter()
                .map(|key| (key, Op::NodeLost { node: node.clone() }))
                .collect();
            self.apply(ops).await?;
        }
        loop {
            let due = self.store.due_users(now, DUE_BATCH).await?;
            let count = due.len();
            handled += count;
            self.apply(due.into_iter().map(|key| (key, Op::Tick)).collect()).await?;
            if count < DUE_BATCH {
                return Ok(handled);
            }
        }
    }

    /// One user as `audience` sees them; an offline user from the database.
    pub async fn get(&self, tenant: &str, user: &str, audience: Audience) -> PresenceResult<Presence> {
        let mut found = self
            .get_many(tenant, &[user.to_owned()], audience, Detail::Connections)
            .await?;
        match found.pop() {
            Some((presence, true)) => Ok(presence),
            _ => Err(PresenceError::NotFound(format!("presence of user `{user}`"))),
        }
    }

    /// Users in the order asked, each with whether they were ever seen; `detail` says whether
    /// each one lists their connections.
    pub async fn get_many(
        &self,
        tenant: &str,
        users: &[String],
        audience: Audience,
        detail: Detail,
    ) -> PresenceResult<Vec<(Presence, bool)>> {
        let keys: Vec<UserKey> = users.iter().map(|user| UserKey::new(tenant, user.as_str())).collect();
        let records = self.records_for_read(&keys).await?;
        let now = now_ms();
        let missing: Vec<String> = users
            .iter()
            .zip(&records)
            .filter(|(_, record)| record.is_none())
            .map(|(user, _)| user.clone())
            .collect();
        let mut durable: HashMap<String, LastSeen> = HashMap::new();
        if !missing.is_empty() {
            durable.extend(self.last_seen.load(tenant, &missing).await?);
            if let Ok(unsaved) = self.unsaved.lock() {
                for user in &missing {
                    if let Some(seen) = unsaved.get(&UserKey::new(tenant, user.as_str())) {
                        durable.insert(user.clone(), *seen);
                    }
                }
            }
        }
        Ok(users
            .iter()
            .zip(records)
            .map(|(user, record)| match record {
                Some(record) => (presence(user, &record, audience, detail, now, &self.rules), true),
                None => match durable.get(user) {
                    Some(seen) => (Presence::offline(user, seen.seen_ms, seen.active_ms), true),
                    None => (Presence::offline(user, 0, 0), false),
                },
            })
            .collect())
    }

    /// Online users after `after` in id order, filtered.
    pub async fn online(
        &self,
        tenant: &str,
        filter: &OnlineFilter,
        after: &str,
        page_size: usize,
        audience: Audience,
        detail: Detail,
    ) -> PresenceResult<OnlinePage> {
        // Filters look at each connection, so they need them even when the page does not.
        let looked_at = if filter.is_empty() { detail } else { Detail::Connections };
        let count = self.store.online_count(tenant).await?;
        let mut page = OnlinePage {
            count,
            ..OnlinePage::default()
        };
        let mut cursor = after.to_owned();
        let mut scanned = 0;
        loop {
            let chunk = if filter.is_empty() { page_size } else { 500 };
            let ids = self.store.online_users(tenant, &cursor, chunk).await?;
            let exhausted = ids.len() < chunk;
            scanned += ids.len();
            for (mut presence, _) in self.get_many(tenant, &ids, audience, looked_at).await? {
                if page.users.len() == page_size {
                    page.next_after = Some(cursor);
                    return Ok(page);
                }
                cursor.clone_from(&presence.user);
                if presence.online && filter.keeps(&presence) {
                    if detail == Detail::Summary {
                        presence.connections = Vec::new();
                    }
                    page.users.push(presence);
                }
            }
            if exhausted {
                return Ok(page);
            }
            if page.users.len() == page_size || scanned >= MAX_SCANNED {
                page.next_after = Some(cursor);
                return Ok(page);
            }
        }
    }

    /// A channel's members after `after` in id order.
    pub async fn channel_members(
        &self,
        tenant: &str,
        channel: &str,
        after: &str,
        page_size: usize,
    ) -> PresenceResult<(Vec<Member>, Option<String>)> {
        let ids = self
            .store
            .channel_members(tenant, channel, after, page_size + 1)
            .await?;
        let more = ids.len() > page_size;
        let ids: Vec<String> = ids.into_iter().take(page_size).collect();
        let keys: Vec<UserKey> = ids.iter().map(|user| UserKey::new(tenant, user.as_str())).collect();
        let records = self.records_for_read(&keys).await?;
        let now = now_ms();
        let members: Vec<Member> = ids
            .iter()
            .zip(records)
            .map(|(user, record)| {
                let record = record.unwrap_or_default();
                Member {
                    user: user.clone(),
                    connections: footprint(&record).channels.get(channel).copied().unwrap_or(0),
                    status: presence(user, &record, Audience::Others, Detail::Summary, now, &self.rules).status,
                }
            })
            .collect();
        let next = more.then(|| ids.last().cloned()).flatten();
        Ok((members, next))
    }

    pub async fn channel_stats(&self, tenant: &str, channel: &str) -> PresenceResult<(i64, i64)> {
        Ok(self.store.channel_stats(tenant, channel).await?)
    }

    pub async fn page_viewers(&self, tenant: &str, page: &str) -> PresenceResult<i64> {
        Ok(self.store.page_viewers(tenant, page).await?)
    }
}
