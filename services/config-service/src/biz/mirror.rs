//! Mirroring published configuration into a key-value store the rest of the ecosystem
//! already reads (Consul KV). The mirror is downstream of the database: a write that fails
//! is retried with backoff, and only the newest value of each key is kept while waiting,
//! so a slow or absent store never holds up a publication or replays stale values.
//! Secret values are written masked: a KV store is not a secret store.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::model::EnvKey;

/// Where mirrored values go.
pub trait KvSink: Send + Sync + 'static {
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), String>>;
}

/// Queues mirrored writes for the background writer.
#[derive(Debug, Clone)]
pub struct Mirror {
    prefix: String,
    queue: mpsc::UnboundedSender<(String, Vec<u8>)>,
}

impl Mirror {
    /// Starts the writer; it stops when `shutdown` fires.
    pub fn start(sink: Arc<dyn KvSink>, prefix: &str, shutdown: switchyard_platform::Shutdown) -> Mirror {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(sink, pending, shutdown));
        Mirror {
            prefix: prefix.trim_matches('/').to_owned(),
            queue,
        }
    }

    /// `<prefix>/<tenant>/<project>/<environment>/<config>`.
    pub fn key(&self, env: &EnvKey, config: &str) -> String {
        format!(
            "{}/{}/{}/{}/{config}",
            self.prefix, env.tenant, env.project, env.environment
        )
    }

    pub fn publish(&self, env: &EnvKey, config: &str, document: &serde_json::Value) {
        let value = serde_json::to_vec(document).unwrap_or_default();
        // The writer only stops at shutdown; a value queued after that is rewritten by the
        // next publication or the next start's replica.
        let _ = self.queue.send((self.key(env, config), value));
    }
}

async fn write_loop(
    sink: Arc<dyn KvSink>,
    mut pending: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    shutdown: switchyard_platform::Shutdown,
) {
    let mut waiting: HashMap<String, Vec<u8>> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if waiting.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                next = pending.recv() => match next {
                    Some((key, value)) => { waiting.insert(key, value); }
                    None => return,
                },
            }
        }
        while let Ok((key, value)) = pending.try_recv() {
            waiting.insert(key, value);
        }
        let mut failed = false;
        let keys: Vec<String> = waiting.keys().cloned().collect();
        for key in keys {
            let Some(value) = waiting.get(&key) else { continue };
            match sink.put(&key, value).await {
                Ok(()) => {
                    waiting.remove(&key);
                }
                Err(error) => {
                    tracing::warn!(%error, key, "mirroring to the key-value store failed; retrying");
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            backoff = Duration::from_millis(100);
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
