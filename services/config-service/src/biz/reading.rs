//! Reading what an environment serves: GetConfig, Watch and the long-poll, from memory. Each
//! client gets the release meant for it (see `delivery::Entry::for_client`), and is noted for
//! client tracking and for deployments' fleets.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use serde_json::Value;
use switchyard_platform::auth::Role;

use super::{
    delivery::{Batch, Entry},
    error::ConfigResult,
    model::{ConfigClient, EnvKey, Fetch},
    publishing::published_resource,
    repository::Repository,
    store::{Caller, ConfigStore},
};

/// A published config as a caller sees it.
#[derive(Debug, Clone)]
pub struct Presented {
    pub env: Arc<EnvKey>,
    pub entry: Arc<Entry>,
    /// The document with secrets in clear, when revealed.
    pub revealed: Option<Value>,
}

impl Presented {
    pub fn content(&self) -> &Value {
        self.revealed.as_ref().unwrap_or(&self.entry.redacted)
    }
}

/// What a watch or poll answer carries.
#[derive(Debug, Clone)]
pub struct WatchBatch {
    pub revision: i64,
    pub snapshot: bool,
    pub configs: Vec<Presented>,
}

/// What a watcher or long-poller asks for.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub env: EnvKey,
    /// The last revision the client applied; 0 for a snapshot first.
    pub since: i64,
    /// Only these config ids; every config when empty.
    pub configs: Vec<String>,
    pub reveal: bool,
    pub client: ClientId,
}

/// What one watch stream last sent of each config: a change that leaves this client on the
/// same document (a deployment's share grew, but not over this client) is not sent again.
#[derive(Debug, Default)]
struct Held {
    hashes: HashMap<String, String>,
}

impl Held {
    fn drop_unchanged(&mut self, batch: &mut WatchBatch) {
        if batch.snapshot {
            self.hashes.clear();
        }
        let hashes = &mut self.hashes;
        batch.configs.retain(|presented| {
            let served = &presented.entry.served;
            let unchanged = !batch.snapshot && hashes.get(&served.config) == Some(&served.content_hash);
            hashes.insert(served.config.clone(), served.content_hash.clone());
            !unchanged
        });
    }
}

/// Who is fetching, for client tracking and for deployments.
#[derive(Debug, Clone, Default)]
pub struct ClientId {
    pub service: String,
    pub instance: String,
    /// The stable id a deployment buckets the client by; the instance when empty.
    pub id: String,
}

impl ClientId {
    /// The id a deployment's share is decided on.
    pub fn bucket_key(&self) -> &str {
        if self.id.is_empty() { &self.instance } else { &self.id }
    }
}

impl<R: Repository> ConfigStore<R> {
    /// The resolved configuration an environment serves, from memory.
    pub async fn get(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        config: &str,
        reveal: bool,
        client: &ClientId,
    ) -> ConfigResult<Presented> {
        let resource = published_resource(env, config);
        caller.require(Role::Viewer, &resource)?;
        if reveal {
            caller.require_reveal(&resource)?;
        }
        let entry = self
            .delivery
            .current(env, config)
            .await?
            .for_client(client.bucket_key());
        self.record(env, &entry, client);
        self.present(&Arc::new(env.clone()), entry, reveal).await
    }

    /// Notes that `client` now holds `entry` (when the client said who it is).
    fn record(&self, env: &EnvKey, entry: &Entry, client: &ClientId) {
        self.delivery
            .record_sighting(env, &entry.served.config, client.bucket_key());
        if client.service.is_empty() {
            return;
        }
        self.delivery.record_fetch(Fetch {
            env: env.clone(),
            config: entry.served.config.clone(),
            service: client.service.chars().take(128).collect(),
            instance: client.instance.chars().take(128).collect(),
            release: entry.served.release,
            etag: entry.served.content_hash.clone(),
        });
    }

    async fn present(&self, env: &Arc<EnvKey>, entry: Arc<Entry>, reveal: bool) -> ConfigResult<Presented> {
        let revealed = if reveal && !entry.served.secret_paths.is_empty() {
            let mut document = entry.served.resolved.clone();
            self.keystore.open_document(&mut document).await?;
            Some(document)
        } else {
            None
        };
        Ok(Presented {
            env: env.clone(),
            entry,
            revealed,
        })
    }

    /// Who fetched the config in `env`, the fetch count and the current release.
    pub async fn clients(
        &self,
        caller: Caller<'_>,
        env: &EnvKey,
        config: &str,
    ) -> ConfigResult<(Vec<ConfigClient>, u64, i64)> {
        caller.require(Role::Viewer, &published_resource(env, config))?;
        let entry = self.delivery.current(env, config).await?;
        self.delivery.flush_fetches().await;
        let (clients, fetches) = self.repository.clients(env, config).await?;
        Ok((clients, fetches, entry.served.release))
    }

    fn authorize_watch(&self, caller: Caller<'_>, env: &EnvKey, reveal: bool) -> ConfigResult<()> {
        caller.require(Role::Viewer, &env.resource())?;
        if reveal {
            caller.require_reveal(&env.resource())?;
        }
        Ok(())
    }

    /// Filters, reveals and records what a watcher or poller receives.
    async fn present_batch(
        &self,
        env: &Arc<EnvKey>,
        batch: Batch,
        subscription: &Subscription,
    ) -> ConfigResult<WatchBatch> {
        let only = &subscription.configs;
        let mut configs = Vec::with_capacity(batch.entries.len());
        for entry in batch.entries {
            if !only.is_empty() && !only.contains(&entry.served.config) {
                continue;
            }
            let entry = entry.for_client(subscription.client.bucket_key());
            self.record(env, &entry, &subscription.client);
            configs.push(self.present(env, entry, subscription.reveal).await?);
        }
        Ok(WatchBatch {
            revision: batch.revision,
            snapshot: batch.snapshot,
            configs,
        })
    }

    /// Changes after `subscription.since`, then live; a snapshot first when `since` is 0 or
    /// too old. Batches that carry none of the requested configs are skipped.
    pub async fn watch(
        self: Arc<Self>,
        caller: Caller<'_>,
        subscription: Subscription,
    ) -> ConfigResult<impl Stream<Item = ConfigResult<WatchBatch>> + Send + 'static> {
        self.authorize_watch(caller, &subscription.env, subscription.reveal)?;
        let batches = self
            .delivery
            .clone()
            .watch(subscription.env.clone(), subscription.since)
            .await?;
        let store = self.clone();
        let subscription = Arc::new(subscription);
        let env = Arc::new(subscription.env.clone());
        let held = Arc::new(std::sync::Mutex::new(Held::default()));
        Ok(batches
            .then(move |batch| {
                let (store, env, subscription, held) = (store.clone(), env.clone(), subscription.clone(), held.clone());
                async move {
                    let mut batch = store.present_batch(&env, batch?, &subscription).await?;
                    held.lock()
                        .unwrap_or_else(|poison| poison.into_inner())
                        .drop_unchanged(&mut batch);
                    Ok(batch)
                }
            })
            .filter(|batch| {
                let keep = match batch {
                    Ok(batch) => batch.snapshot || !batch.configs.is_empty(),
                    Err(_) => true,
                };
                std::future::ready(keep)
            }))
    }

    /// Long-poll: changes after `since`, waiting up to `wait` (bounded by the store's limit).
    pub async fn poll(
        &self,
        caller: Caller<'_>,
        subscription: &Subscription,
        wait: Duration,
    ) -> ConfigResult<WatchBatch> {
        self.authorize_watch(caller, &subscription.env, subscription.reveal)?;
        let wait = wait.min(self.limits.max_wait);
        let batch = self.delivery.poll(&subscription.env, subscription.since, wait).await?;
        self.present_batch(&Arc::new(subscription.env.clone()), batch, subscription)
            .await
    }
}
