//! The records this replica wrote last. A gateway node streams to one replica, so the next
//! batch about the same users usually finds their records here and skips reading them back
//! from the store. A record is taken out while a batch works on it and put back with what
//! was written; a stale one (another replica wrote since) fails the store's version check,
//! and the batch reads the record again. A deleted record is not remembered: users come and
//! go, and a cache of the departed would fill up with them.
//! Queries use it too, but only where the store confirms that a cached record is still the
//! stored version (which saves decoding it again). A write that changes nothing is never
//! checked against the store, so the cache is cleared whenever the store may have lost state
//! (a node's lease is unknown to it: first contact, or Redis restarted). Records are shared
//! (`Arc`) so that a query can hold one while a batch works on it.
//! Every reported event passes through here, so the map hashes with foldhash, not SipHash.

use std::sync::{Arc, Mutex};

use foldhash::HashMap;

use super::model::{UserKey, UserRecord};

#[derive(Debug)]
pub struct RecordCache {
    entries: Mutex<HashMap<UserKey, Arc<UserRecord>>>,
    capacity: usize,
}

impl RecordCache {
    /// Keeps at most `capacity` records; when full it starts over (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::default(),
            capacity,
        }
    }

    /// Takes what is cached for each key out of the cache (`None`: unknown here). The caller
    /// puts back what it writes (or leaves unchanged).
    pub fn take_many(&self, keys: &[UserKey]) -> Vec<Option<Arc<UserRecord>>> {
        let Ok(mut entries) = self.entries.lock() else {
            return vec![None; keys.len()];
        };
        keys.iter().map(|key| entries.remove(key)).collect()
    }

    /// What is cached for each key, left in the cache.
    pub fn peek_many(&self, keys: &[UserKey]) -> Vec<Option<Arc<UserRecord>>> {
        let Ok(entries) = self.entries.lock() else {
            return vec![None; keys.len()];
        };
        keys.iter().map(|key| entries.get(key).cloned()).collect()
    }

    /// Remembers a record a query read, while there is room: queries never make the cache
    /// start over.
    pub fn offer(&self, key: UserKey, record: Arc<UserRecord>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() < self.capacity {
            entries.insert(key, record);
        }
    }

    /// Remembers what was written (or read and left as it was); `None` (no record) is not kept.
    pub fn put(&self, key: UserKey, record: Option<Arc<UserRecord>>) {
        let Some(record) = record else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, record);
    }

    /// Forgets everything: the store may have lost what this replica wrote.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
