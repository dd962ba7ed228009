//! Which client ids fetch or watch each config: the fleet a deployment's steps are measured
//! against. Noted in memory on every read that names a client id, written to the database on
//! each resync (one row per client and config, its last sighting), read by the deployment
//! driver when it sets a step's threshold.

use std::collections::HashMap;

use super::model::{EnvKey, now_ms};

/// Distinct (config, client) pairs kept between two flushes; more are dropped until the next
/// flush, so a flood of made-up ids cannot grow memory without bound.
const MAX_PENDING: usize = 200_000;
/// A pair written down is not written again for this long: a fleet reading a config all day
/// costs one row write per client per interval, not one per read.
const REWRITE_AFTER_MS: i64 = 10 * 60_000;
/// Pairs remembered as written; past this, the memory is cleared and pairs are written again.
const MAX_REMEMBERED: usize = 1_000_000;

/// One sighting: a client id reading a config of an environment, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub env: EnvKey,
    pub config: String,
    pub client_id: String,
    pub seen_ms: i64,
}

type Pair = (EnvKey, String, String);

#[derive(Debug, Default)]
pub struct Sightings {
    pending: std::sync::Mutex<HashMap<Pair, i64>>,
    /// When each pair was last handed out for writing.
    written: std::sync::Mutex<HashMap<Pair, i64>>,
}

impl Sightings {
    pub fn note(&self, env: &EnvKey, config: &str, client_id: &str) {
        if client_id.is_empty() {
            return;
        }
        let now = now_ms();
        let key = (env.clone(), config.to_owned(), client_id.to_owned());
        {
            let written = self.written.lock().unwrap_or_else(|poison| poison.into_inner());
            if written.get(&key).is_some_and(|at| now - at < REWRITE_AFTER_MS) {
                return;
            }
        }
        let mut pending = self.pending.lock().unwrap_or_else(|poison| poison.into_inner());
        if pending.len() >= MAX_PENDING && !pending.contains_key(&key) {
            return;
        }
        pending.insert(key, now);
    }

    /// Everything noted since the last call.
    pub fn drain(&self) -> Vec<Sighting> {
        let drained: Vec<(Pair, i64)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|poison| poison.into_inner());
            pending.drain().collect()
        };
        let mut written = self.written.lock().unwrap_or_else(|poison| poison.into_inner());
        if written.len() + drained.len() > MAX_REMEMBERED {
            written.clear();
        }
        for (pair, seen_ms) in &drained {
            written.insert(pair.clone(), *seen_ms);
        }
        drop(written);
        drained
            .into_iter()
            .map(|((env, config, client_id), seen_ms)| Sighting {
                env,
                config,
                client_id,
                seen_ms,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_written_once_per_interval_and_empty_ids_never() {
        let sightings = Sightings::default();
        let env = EnvKey::new("t", "shop", "prod");
        sightings.note(&env, "checkout", "pod-1");
        sightings.note(&env, "checkout", "pod-1");
        sightings.note(&env, "checkout", "");
        sightings.note(&env, "search", "pod-1");
        let mut drained: Vec<String> = sightings.drain().into_iter().map(|s| s.config).collect();
        drained.sort();
        assert_eq!(drained, ["checkout", "search"]);
        sightings.note(&env, "checkout", "pod-1");
        assert!(sightings.drain().is_empty(), "written a moment ago");
    }
}
