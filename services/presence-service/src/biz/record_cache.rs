//! The records this replica wrote last. A gateway node streams to one replica, so the next
//! batch about the same users usually finds their records here and skips reading them back
//! from the store. A cached record can be stale (another replica wrote since): the store's
//! version check then refuses the write, the entry is dropped and the record is read again.
//! Only writes use it; queries always read the store. A write that changes nothing is never
//! checked against the store, so the cache is cleared whenever the store may have lost state
//! (a node's lease is unknown to it: first contact, or Redis restarted).

use std::{collections::HashMap, sync::Mutex};

use super::model::{UserKey, UserRecord};

#[derive(Debug)]
pub struct RecordCache {
    /// `None`: this replica deleted the record (the user has no connection).
    entries: Mutex<HashMap<UserKey, Option<UserRecord>>>,
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

    /// What is cached for each key: `Some(record or None)`, or `None` when unknown.
    pub fn get_many(&self, keys: &[UserKey]) -> Vec<Option<Option<UserRecord>>> {
        let Ok(entries) = self.entries.lock() else {
            return vec![None; keys.len()];
        };
        keys.iter().map(|key| entries.get(key).cloned()).collect()
    }

    /// Remembers what was written.
    pub fn put(&self, key: &UserKey, record: Option<&UserRecord>) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.clone(), record.cloned());
    }

    /// Forgets everything: the store may have lost what this replica wrote.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    /// Forgets a record that turned out stale.
    pub fn forget(&self, key: &UserKey) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}
