//! Published configs as protobuf, built once per (config, revision) and shared by every
//! reader and watcher: a publication seen by a thousand watchers is converted once, and the
//! `GetConfig` hot path is a map lookup and a clone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use switchyard_api::config::v1 as pb;

use super::convert;
use crate::biz::publishing::Presented;

/// Entries kept before the cache starts over; a published config is rebuilt on its next read.
const CAPACITY: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant: String,
    project: String,
    environment: String,
    config: String,
    revision: i64,
}

#[derive(Debug, Default)]
pub struct EncodedConfigs {
    entries: Mutex<HashMap<Key, Arc<pb::ResolvedConfig>>>,
}

impl EncodedConfigs {
    /// The masked form of a published config; revealed forms are built per call, never cached.
    pub fn resolved(&self, presented: &Presented) -> Arc<pb::ResolvedConfig> {
        if presented.revealed.is_some() {
            return Arc::new(convert::resolved(presented, None));
        }
        let key = Key {
            tenant: presented.env.tenant.clone(),
            project: presented.env.project.clone(),
            environment: presented.env.environment.clone(),
            config: presented.entry.served.config.clone(),
            revision: presented.entry.served.revision,
        };
        let mut entries = self.entries.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(encoded) = entries.get(&key) {
            return encoded.clone();
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        let encoded = Arc::new(convert::resolved(presented, None));
        entries.insert(key, encoded.clone());
        encoded
    }
}
