//! Published configs as protobuf, built once per published entry and shared by every
//! reader: the `GetConfig` hot path is a map lookup and a clone. Entries that are no
//! longer served stay until the cache starts over at its capacity.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use switchyard_api::config::v1 as pb;

use super::convert;
use crate::biz::{delivery::Entry, reading::Presented};

/// Entries kept before the cache starts over; a published config is rebuilt on its next read.
const CAPACITY: usize = 50_000;

/// Keyed by the address of the published entry. Each cached value holds that entry, so the
/// address cannot be reused by another entry while the key exists.
type Cached = (Arc<Entry>, Arc<pb::ResolvedConfig>);

#[derive(Debug, Default)]
pub struct EncodedConfigs {
    entries: Mutex<HashMap<usize, Cached>>,
}

impl EncodedConfigs {
    /// The masked form of a published config; revealed forms are built per call, never cached.
    pub fn resolved(&self, presented: &Presented) -> Arc<pb::ResolvedConfig> {
        if presented.revealed.is_some() {
            return Arc::new(convert::resolved(presented, None));
        }
        let key = Arc::as_ptr(&presented.entry) as usize;
        let mut entries = self.entries.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some((_, encoded)) = entries.get(&key) {
            return encoded.clone();
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        let encoded = Arc::new(convert::resolved(presented, None));
        entries.insert(key, (presented.entry.clone(), encoded.clone()));
        encoded
    }
}
