//! Which client ids fetch or watch each config: the fleet a deployment's steps are measured
//! against. Noted in memory on every read that names a client id, written to the database on
//! each resync (one row per client and config, its last sighting), read by the deployment
//! driver when it sets a step's threshold.

use std::collections::HashMap;

use super::model::{EnvKey, now_ms};

/// Distinct (config, client) pairs kept between two flushes; more are dropped until the next
/// flush, so a flood of made-up ids cannot grow memory without bound.
const MAX_PENDING: usize = 200_000;

/// One sighting: a client id reading a config of an environment, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub env: EnvKey,
    pub config: String,
    pub client_id: String,
    pub seen_ms: i64,
}

#[derive(Debug, Default)]
pub struct Sightings {
    pending: std::sync::Mutex<HashMap<(EnvKey, String, String), i64>>,
}

impl Sightings {
    pub fn note(&self, env: &EnvKey, config: &str, client_id: &str) {
        if client_id.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|poison| poison.into_inner());
        let key = (env.clone(), config.to_owned(), client_id.to_owned());
        if pending.len() >= MAX_PENDING && !pending.contains_key(&key) {
            return;
        }
        pending.insert(key, now_ms());
    }

    /// Everything noted since the last call.
    pub fn drain(&self) -> Vec<Sighting> {
        let mut pending = self.pending.lock().unwrap_or_else(|poison| poison.into_inner());
        pending
            .drain()
            .map(|((env, config, client_id), seen_ms)| Sighting {
                env,
                config,
                client_id,
                seen_ms,
            })
            .collect()
    }
}
