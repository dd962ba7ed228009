//! What every service knows of evaluation access configured at runtime: the API keys
//! config-service stores, and which environments evaluate flags without a key. config-service
//! fills its own directory from the database; every other service fills its copy from
//! config-service's `WatchApiKeys` stream (see [`super::follower`]). Each update is the whole
//! set, so a replaced directory can never keep a revoked key by missing a message.
//!
//! The directory also remembers when each key was last used, to the minute, until the owner
//! collects the uses and stores them.

use std::{
    collections::{BTreeSet, HashMap},
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

/// The active keys by SHA-256 and the public environments, the revision they are as of, and
/// uses not yet stored.
#[derive(Debug)]
pub struct KeyDirectory {
    access: RwLock<Arc<Access>>,
    revision: watch::Sender<u64>,
    /// Key id → last use (Unix ms) not yet collected.
    uses: Mutex<HashMap<String, i64>>,
    /// Key id → last use recorded, to skip uses within [`USE_RESOLUTION_MS`].
    recorded: Mutex<HashMap<String, i64>>,
}

/// One whole state of the directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub keys: HashMap<String, DirectoryKey>,
    /// `{tenant}/projects/{p}/environments/{e}` of every environment whose flags evaluate
    /// without a key.
    pub public_environments: BTreeSet<String>,
}

impl Access {
    pub fn new(keys: impl IntoIterator<Item = DirectoryKey>, public_environments: BTreeSet<String>) -> Self {
        Self {
            keys: keys.into_iter().map(|key| (key.record.sha256.clone(), key)).collect(),
            public_environments,
        }
    }

    /// The entry of `public_environments` for an environment of a tenant.
    pub fn public_entry(tenant: &str, environment: &str) -> String {
        format!("{tenant}/{environment}")
    }
}

impl Default for KeyDirectory {
    fn default() -> Self {
        Self {
            access: RwLock::default(),
            revision: watch::Sender::new(0),
            uses: Mutex::default(),
            recorded: Mutex::default(),
        }
    }
}

impl KeyDirectory {
    /// Replaces the whole state, as of `revision`; wakes whoever follows changes only when
    /// something changed. A snapshot older than the one held is ignored: two reloads racing
    /// (a write's own and a replica's announcement) must not put a key just created out of
    /// sight again.
    pub fn replace(&self, revision: u64, access: Access) {
        let mut current = self.access.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let held = *self.revision.borrow();
        if revision < held || (**current == access && held == revision) {
            return;
        }
        *current = Arc::new(access);
        drop(current);
        self.revision.send_replace(revision);
    }

    pub fn lookup(&self, sha256: &str) -> Option<DirectoryKey> {
        self.snapshot().1.keys.get(sha256).cloned()
    }

    /// Whether flags of `environment` (`projects/{p}/environments/{e}`) of `tenant` evaluate
    /// without a key.
    pub fn is_public(&self, tenant: &str, environment: &str) -> bool {
        self.snapshot()
            .1
            .public_environments
            .contains(&Access::public_entry(tenant, environment))
    }

    /// The revision and the whole state.
    pub fn snapshot(&self) -> (u64, Arc<Access>) {
        let access = self
            .access
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        (*self.revision.borrow(), access)
    }

    /// Wakes on every [`replace`](Self::replace) that changed something.
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
        let public = BTreeSet::from(["acme/projects/shop/environments/dev".to_owned()]);
        directory.replace(1, Access::new([key("a", None), key("b", None)], public));
        assert!(directory.is_public("acme", "projects/shop/environments/dev"));
        directory.replace(2, Access::new([key("b", None)], BTreeSet::new()));
        assert!(directory.lookup("hash-a").is_none());
        assert!(directory.lookup("hash-b").is_some());
        assert!(!directory.is_public("acme", "projects/shop/environments/dev"));
        assert_eq!(directory.snapshot().0, 2);
    }

    #[test]
    fn only_a_change_wakes_followers() {
        let directory = KeyDirectory::default();
        let mut changes = directory.changes();
        directory.replace(1, Access::new([key("a", None)], BTreeSet::new()));
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        directory.replace(1, Access::new([key("a", None)], BTreeSet::new()));
        assert!(!changes.has_changed().unwrap(), "the same state again wakes nobody");
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
