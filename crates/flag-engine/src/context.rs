//! The evaluation context, indexed for the lookups targeting rules make.
//!
//! Nearly every rule reads a top-level context key whose name is known when the flag set
//! compiles (`{"var": "email"}`). Each compiled `var` therefore carries the hash of its key,
//! and a [`Context`] keeps its entries sorted by (hash, key): a lookup compares integers (a scan
//! of a small context, a binary search of a large one) and, on a hit, one string — where a
//! `serde_json::Map` (a `BTreeMap`) compares strings at every step. Sorting ties by key keeps lookups logarithmic even when
//! many keys share a hash, so a hostile context can make them no slower.

use std::hash::Hasher;

use serde_json::{Map, Value};

use crate::short_str;

/// An FxHash-style multiply-rotate, several times cheaper than SipHash on short keys. Flag keys
/// (hashed for the flag map) come from whoever writes the definitions, and context keys are only
/// ever searched, never bucketed, so none of them needs a keyed, DoS-resistant hash.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.0 = (self.0.rotate_left(26) ^ short_str::word64(chunk, 0)).wrapping_mul(K);
        }
        // The last 1–7 bytes as one word, from two overlapping loads: keys are short, and a
        // round per byte would cost more than the rest of the lookup.
        let rest = chunks.remainder();
        let word = match rest.len() {
            0 => return,
            1..=3 => u64::from(rest[0]) | u64::from(rest[rest.len() / 2]) << 8 | u64::from(rest[rest.len() - 1]) << 16,
            length => u64::from(short_str::word32(rest, 0)) | u64::from(short_str::word32(rest, length - 4)) << 32,
        };
        // The length keeps "ab" and "abb" (same bytes loaded) apart.
        self.0 = (self.0.rotate_left(26) ^ word ^ ((rest.len() as u64) << 56)).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// The hash a [`Context`] files `key` under.
pub(crate) fn key_hash(key: &str) -> u64 {
    let mut hasher = KeyHasher::default();
    hasher.write(key.as_bytes());
    hasher.finish()
}

/// A context key named by a rule, hashed once when the rule compiles.
#[derive(Debug, Clone)]
pub(crate) struct ContextKey {
    name: Box<str>,
    hash: u64,
}

impl ContextKey {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: Box::from(name),
            hash: key_hash(name),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// Contexts with at most this many entries are scanned rather than searched.
const SCANNED: usize = 16;

/// What a flag is evaluated for: the caller's attributes (`targetingKey` is an ordinary entry).
///
/// Build it once per request and evaluate every flag against it. It converts from and to a
/// `serde_json::Map`; iteration order is unspecified.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// Every key's hash, apart from the entries so that a search reads a dense array.
    hashes: Vec<u64>,
    /// In the order of `hashes`, and by key where hashes are equal; keys are unique.
    entries: Vec<(String, Value)>,
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key_hash(key), key)
    }

    /// Sets `key`, returning the value it replaces.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        let key = key.into();
        let hash = key_hash(&key);
        match self.position(hash, &key) {
            Ok(index) => Some(std::mem::replace(&mut self.entries[index].1, value)),
            Err(index) => {
                self.hashes.insert(index, hash);
                self.entries.insert(index, (key, value));
                None
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// The context as a JSON object (keys in order).
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(key, value)| (key.to_owned(), value.clone()))
            .collect()
    }

    pub(crate) fn lookup(&self, key: &ContextKey) -> Option<&Value> {
        self.find(key.hash, &key.name)
    }

    fn find(&self, hash: u64, key: &str) -> Option<&Value> {
        // Most contexts hold a handful of attributes: scanning all their hashes, with no exit
        // that depends on where the key is, beats searching.
        if self.hashes.len() <= SCANNED {
            let mut index = usize::MAX;
            for (candidate, &other) in self.hashes.iter().enumerate() {
                if other == hash {
                    index = candidate;
                }
            }
            let (found, value) = self.entries.get(index)?;
            if short_str::equal(found, key) {
                return Some(value);
            }
        }
        let index = self.position(hash, key).ok()?;
        Some(&self.entries[index].1)
    }

    /// Where `key` is, or would go. Integers narrow the search to the keys with its hash —
    /// nearly always none or one — and those are searched by key.
    fn position(&self, hash: u64, key: &str) -> Result<usize, usize> {
        let start = self.hashes.partition_point(|&other| other < hash);
        let run = self.hashes[start..].partition_point(|&other| other == hash);
        match self.entries[start..start + run].binary_search_by(|(other, _)| other.as_str().cmp(key)) {
            Ok(offset) => Ok(start + offset),
            Err(offset) => Err(start + offset),
        }
    }
}

/// Later entries win, as in a map.
impl FromIterator<(String, Value)> for Context {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(pairs: I) -> Self {
        let mut entries: Vec<(u64, String, Value)> = pairs
            .into_iter()
            .map(|(key, value)| (key_hash(&key), key, value))
            .collect();
        // Reversed, a stable sort puts the last of equal keys first, and `dedup_by` keeps it.
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        entries.dedup_by(|later, kept| later.0 == kept.0 && later.1 == kept.1);
        let hashes = entries.iter().map(|entry| entry.0).collect();
        let entries = entries.into_iter().map(|(_, key, value)| (key, value)).collect();
        Self { hashes, entries }
    }
}

impl Extend<(String, Value)> for Context {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, pairs: I) {
        for (key, value) in pairs {
            self.insert(key, value);
        }
    }
}

impl From<Map<String, Value>> for Context {
    fn from(map: Map<String, Value>) -> Self {
        map.into_iter().collect()
    }
}

impl From<Context> for Map<String, Value> {
    fn from(context: Context) -> Self {
        context.entries.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_every_key_and_nothing_else() {
        let context: Context = (0..200).map(|n| (format!("key-{n}"), json!(n))).collect();
        assert_eq!(context.len(), 200);
        for n in 0..200 {
            assert_eq!(context.get(&format!("key-{n}")), Some(&json!(n)));
            assert_eq!(context.lookup(&ContextKey::new(&format!("key-{n}"))), Some(&json!(n)));
        }
        assert_eq!(context.get("key-200"), None);
        assert_eq!(context.get(""), None);
    }

    #[test]
    fn later_entries_win_as_in_a_map() {
        let pairs = [("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5)].map(|(key, n)| (key.to_owned(), json!(n)));
        let context: Context = pairs.clone().into_iter().collect();
        let map: Map<String, Value> = pairs.into_iter().collect();
        assert_eq!(context.to_map(), map);

        let mut context = context;
        assert_eq!(context.insert("a", json!(6)), Some(json!(5)));
        assert_eq!(context.insert("c", json!(7)), None);
        context.extend([("b".to_owned(), json!(8))]);
        assert_eq!(
            Map::from(context),
            Map::from_iter([
                ("a".to_owned(), json!(6)),
                ("b".to_owned(), json!(8)),
                ("c".to_owned(), json!(7)),
            ])
        );
    }

    #[test]
    fn keys_that_share_a_hash_stay_apart() {
        // Entries filed under one hash (as a hostile context might arrange) are still told
        // apart by key.
        let mut context = Context::new();
        for key in ["x", "y", "z"] {
            context.hashes.push(7);
            context.entries.push((key.to_owned(), json!(key)));
        }
        for key in ["x", "y", "z"] {
            assert_eq!(context.find(7, key), Some(&json!(key)));
        }
        assert_eq!(context.find(7, "w"), None);
    }
}
