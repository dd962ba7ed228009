//! API keys created at runtime, held in memory by every service. config-service owns the
//! store and fills its own directory from the database; every other service fills its copy
//! from config-service's `WatchApiKeys` stream (see [`super::follower`]). Each update is the
//! whole set of active keys, so a replaced directory can never keep a revoked key by
//! missing a message.
//!
//! The directory also remembers when each key was last used, to the minute, until the owner
//! collects the uses and stores them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use tokio::sync::watch;

use super::ApiKeyRecord;

/// How coarse `last_used_time` is: a key used twice within this is recorded once.
pub const USE_RESOLUTION_MS: i64 = 60_000;

/// An active key: its record and, when it has one, the moment it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryKey {
    pub record: ApiKeyRecord,
    /// Unix milliseconds; `None` never expires.
    pub expire_ms: Option<i64>,
}

impl DirectoryKey {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_ms.is_some_and(|expire| expire <= now_ms)
    }
}

/// The active keys by SHA-256, the revision they are as of, and uses not yet stored.
#[derive(Debug)]
pub struct KeyDirectory {
    keys: RwLock<Arc<HashMap<String, DirectoryKey>>>,
    revision: watch::Sender<u64>,
    /// Key id → last use (Unix ms) not yet collected.
    uses: Mutex<HashMap<String, i64>>,
    /// Key id → last use recorded, to skip uses within [`USE_RESOLUTION_MS`].
    recorded: Mutex<HashMap<String, i64>>,
}

impl Default for KeyDirectory {
    fn default() -> Self {
        Self {
            keys: RwLock::default(),
            revision: watch::Sender::new(0),
            uses: Mutex::default(),
            recorded: Mutex::default(),
        }
    }
}

impl KeyDirectory {
    /// Replaces every key with `keys`, as of `revision`, and wakes whoever follows changes.
    pub fn replace(&self, revision: u64, keys: impl IntoIterator<Item = DirectoryKey>) {
        let keys: HashMap<String, DirectoryKey> =
            keys.into_iter().map(|key| (key.record.sha256.clone(), key)).collect();
        *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
        self.revision.send_replace(revision);
    }

    pub fn lookup(&self, sha256: &str) -> Option<DirectoryKey> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(sha256)
            .cloned()
    }

    /// The revision and every active key.
    pub fn snapshot(&self) -> (u64, Arc<HashMap<String, DirectoryKey>>) {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        (*self.revision.borrow(), keys)
    }

    /// Wakes on every [`replace`](Self::replace).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Notes that key `id` authenticated a call at `now_ms`.
    pub fn record_use(&self, id: &str, now_ms: i64) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if recorded.get(id).is_some_and(|last| now_ms - last < USE_RESOLUTION_MS) {
            return;
        }
        recorded.insert(id.to_owned(), now_ms);
        drop(recorded);
        self.uses
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.to_owned(), now_ms);
    }

    /// The uses noted since the last call, as (key id, Unix ms).
    pub fn take_uses(&self) -> Vec<(String, i64)> {
        let mut uses = self.uses.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        uses.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, expire_ms: Option<i64>) -> DirectoryKey {
        DirectoryKey {
            record: ApiKeyRecord {
                id: id.into(),
                sha256: format!("hash-{id}"),
                tenant: "acme".into(),
                roles: vec!["viewer".into()],
                scopes: vec![],
            },
            expire_ms,
        }
    }

    #[test]
    fn a_replacement_drops_keys_it_does_not_name() {
        let directory = KeyDirectory::default();
        directory.replace(1, [key("a", None), key("b", None)]);
        directory.replace(2, [key("b", None)]);
        assert!(directory.lookup("hash-a").is_none());
        assert!(directory.lookup("hash-b").is_some());
        assert_eq!(directory.snapshot().0, 2);
    }

    #[test]
    fn uses_within_a_minute_are_recorded_once() {
        let directory = KeyDirectory::default();
        directory.record_use("a", 1_000);
        directory.record_use("a", 30_000);
        assert_eq!(directory.take_uses(), vec![("a".to_owned(), 1_000)]);
        directory.record_use("a", 50_000);
        assert!(directory.take_uses().is_empty());
        directory.record_use("a", 61_000);
        assert_eq!(directory.take_uses(), vec![("a".to_owned(), 61_000)]);
    }

    #[test]
    fn expiry_is_inclusive_of_its_instant() {
        assert!(key("a", Some(10)).is_expired(10));
        assert!(!key("a", Some(10)).is_expired(9));
        assert!(!key("a", None).is_expired(i64::MAX));
    }
}
