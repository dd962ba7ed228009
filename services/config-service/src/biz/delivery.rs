//! Serving published configuration from memory, and telling watchers what changed.
//!
//! Each environment that has been read is held as an [`EnvState`]: what it serves now, its
//! revision, and a ring of recent changes. Watchers wait on the revision (a `watch` channel,
//! so a slow watcher never lags a queue) and then read what they miss from the ring, from
//! the change log in the database when the ring no longer has it, or get a snapshot when
//! the log was pruned past their revision. Replicas learn of changes through the bus and
//! re-read the change log, and a periodic resync covers messages lost while the bus was down.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, RwLock},
    time::Duration,
};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_platform::bus::ChangeBus;
use tokio::sync::{Mutex, watch};

use super::{
    deployments::strategy::{FULL, client_bucket},
    error::{ConfigError, ConfigResult},
    model::{EnvKey, Fetch, Served, now_ms},
    repository::{Repository, StoreError},
    secrets,
    sightings::Sightings,
};

/// The bus topic on which replicas announce new revisions.
pub const TOPIC: &str = "config-service.changes";

/// Change-log rows read from the database per query when a watcher is far behind.
const CATCH_UP_BATCH: i64 = 1000;

/// One config as an environment serves it, with its redacted form computed once.
#[derive(Debug)]
pub struct Entry {
    /// `projects/{project}/environments/{environment}/configs/{config}`.
    pub name: String,
    pub served: Served,
    /// The resolved document with secret values replaced by a mask.
    pub redacted: Value,
    /// `redacted` as compact JSON text (the string itself for plain-text configs), rendered once.
    pub text: String,
    /// While a deployment runs: the release it moves clients to, and which clients get it.
    pub candidate: Option<Candidate>,
}

/// The other side of a config under deployment.
#[derive(Debug)]
pub struct Candidate {
    pub entry: Arc<Entry>,
    /// Parts per million of clients.
    pub share: u32,
    pub seed: String,
}

impl Entry {
    fn new(env: &EnvKey, mut served: Served) -> Arc<Entry> {
        let candidate = served.rollout.take().map(|rollout| {
            let side = Served {
                config: served.config.clone(),
                revision: served.revision,
                release: rollout.release,
                format: rollout.format,
                resolved: rollout.resolved,
                content_hash: rollout.content_hash,
                secret_paths: rollout.secret_paths,
                created_ms: served.created_ms,
                rollout: None,
            };
            Candidate {
                entry: Entry::new(env, side),
                share: rollout.share,
                seed: rollout.seed,
            }
        });
        let mut redacted = served.resolved.clone();
        secrets::redact(&mut redacted, &served.secret_paths);
        let text = super::document::delivered_text(served.format, &redacted);
        let name = format!("{}/configs/{}", env.resource(), served.config);
        Arc::new(Entry {
            name,
            served,
            redacted,
            text,
            candidate,
        })
    }

    /// What the client called `client_id` is served: the candidate when a deployment's share
    /// covers its bucket, this entry otherwise. A client without an id keeps this entry until
    /// the deployment reaches everyone.
    pub fn for_client(self: &Arc<Entry>, client_id: &str) -> Arc<Entry> {
        match &self.candidate {
            Some(candidate) if candidate.covers(client_id) => candidate.entry.clone(),
            _ => self.clone(),
        }
    }
}

impl Candidate {
    fn covers(&self, client_id: &str) -> bool {
        if self.share >= FULL {
            return true;
        }
        !client_id.is_empty() && client_bucket(&self.seed, client_id) < self.share
    }
}

/// What a watcher receives: changes after its revision, or a snapshot that replaces its state.
#[derive(Debug, Clone)]
pub struct Batch {
    pub revision: i64,
    pub snapshot: bool,
    pub entries: Vec<Arc<Entry>>,
}

#[derive(Debug, Default)]
struct EnvView {
    revision: i64,
    compacted: i64,
    configs: HashMap<String, Arc<Entry>>,
    recent: VecDeque<Arc<Entry>>,
}

#[derive(Debug)]
pub struct EnvState {
    view: RwLock<EnvView>,
    revision: watch::Sender<i64>,
    /// Serialises refreshes so that changes are applied once and in order.
    refreshing: Mutex<()>,
}

impl EnvState {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, EnvView> {
        self.view.read().unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, EnvView> {
        self.view.write().unwrap_or_else(|poison| poison.into_inner())
    }

    pub fn revision(&self) -> i64 {
        self.read().revision
    }
}

/// A client of one config: (environment, config, service, instance).
type ClientKey = (EnvKey, String, String, String);

/// The announcement on the bus.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    tenant: String,
    project: String,
    environment: String,
    revision: i64,
}

#[derive(Debug)]
pub struct Delivery<R> {
    repository: Arc<R>,
    bus: Arc<dyn ChangeBus>,
    envs: RwLock<HashMap<EnvKey, Arc<EnvState>>>,
    /// Changes kept in memory per environment.
    ring: usize,
    /// Change-log rows the database keeps per environment.
    retain: i64,
    /// Per (environment, config, service, instance): the latest fetch, its time, and how many
    /// fetches since the last flush.
    fetches: std::sync::Mutex<HashMap<ClientKey, (Fetch, i64, u64)>>,
    /// Client ids seen reading each config, for deployments' thresholds.
    sightings: Sightings,
    mirror: Option<super::mirror::Mirror>,
}

impl<R: Repository> Delivery<R> {
    pub fn new(repository: Arc<R>, bus: Arc<dyn ChangeBus>, ring: usize, retain: i64) -> Self {
        Delivery {
            repository,
            bus,
            envs: RwLock::new(HashMap::new()),
            ring: ring.max(1),
            retain,
            fetches: std::sync::Mutex::new(HashMap::new()),
            sightings: Sightings::default(),
            mirror: None,
        }
    }

    /// Mirrors every publication this replica writes (masked) into a key-value store.
    pub fn with_mirror(mut self, mirror: super::mirror::Mirror) -> Self {
        self.mirror = Some(mirror);
        self
    }

    pub fn retain(&self) -> i64 {
        self.retain
    }

    fn loaded(&self, env: &EnvKey) -> Option<Arc<EnvState>> {
        let envs = self.envs.read().unwrap_or_else(|poison| poison.into_inner());
        envs.get(env).cloned()
    }

    /// The environment's state, loaded from the database on first use.
    pub async fn state(&self, env: &EnvKey) -> ConfigResult<Arc<EnvState>> {
        if let Some(state) = self.loaded(env) {
            return Ok(state);
        }
        let key = env;
        let (environment, served) = match self.repository.served(env).await {
            Err(StoreError::Missing) => return Err(ConfigError::NotFound(env.resource())),
            other => other?,
        };
        let view = EnvView {
            revision: environment.revision,
            compacted: environment.compacted,
            configs: served
                .into_iter()
                .map(|served| (served.config.clone(), Entry::new(key, served)))
                .collect(),
            recent: VecDeque::new(),
        };
        let state = Arc::new(EnvState {
            revision: watch::channel(view.revision).0,
            view: RwLock::new(view),
            refreshing: Mutex::new(()),
        });
        let mut envs = self.envs.write().unwrap_or_else(|poison| poison.into_inner());
        Ok(envs.entry(env.clone()).or_insert(state).clone())
    }

    /// What the environment serves for `config` now.
    pub async fn current(&self, env: &EnvKey, config: &str) -> ConfigResult<Arc<Entry>> {
        let state = self.state(env).await?;
        let entry = state.read().configs.get(config).cloned();
        entry.ok_or_else(|| ConfigError::NotFound(format!("{}/configs/{config} (not published)", env.resource())))
    }

    /// Everything the environment serves now, and its revision.
    pub async fn snapshot(&self, env: &EnvKey) -> ConfigResult<Batch> {
        let state = self.state(env).await?;
        let view = state.read();
        Ok(snapshot_of(&view))
    }

    /// Applies rows this replica just wrote, then tells the other replicas.
    pub async fn applied(&self, env: &EnvKey, rows: Vec<Served>) {
        let last = rows.last().map(|row| row.revision);
        if let Some(mirror) = &self.mirror {
            for row in &rows {
                let mut masked = row.resolved.clone();
                secrets::redact(&mut masked, &row.secret_paths);
                mirror.publish(env, &row.config, &masked);
            }
        }
        if let Some(state) = self.loaded(env) {
            let guard = state.refreshing.lock().await;
            let contiguous = rows.first().map(|row| row.revision) == Some(state.revision() + 1);
            if contiguous {
                self.apply(env, &state, rows);
            }
            drop(guard);
            let behind = last.is_some_and(|last| state.revision() < last);
            if behind && let Err(error) = self.refresh(env, &state).await {
                tracing::warn!(%error, "refreshing after a publication failed; the resync will retry");
            }
        }
        if let Some(revision) = last {
            self.announce(env, revision);
        }
    }

    /// Tells other replicas, in the background: a slow or absent Redis must not hold up an
    /// acknowledged publication (they catch up from the change log either way).
    fn announce(&self, env: &EnvKey, revision: i64) {
        let announcement = Announcement {
            tenant: env.tenant.clone(),
            project: env.project.clone(),
            environment: env.environment.clone(),
            revision,
        };
        let payload = serde_json::to_vec(&announcement).unwrap_or_default();
        let bus = self.bus.clone();
        tokio::spawn(async move {
            if let Err(error) = bus.publish(TOPIC, Bytes::from(payload)).await {
                tracing::warn!(%error, "announcing a change on the bus failed; other replicas catch up on resync");
            }
        });
    }

    fn apply(&self, env: &EnvKey, state: &EnvState, rows: Vec<Served>) {
        let mut view = state.write();
        for row in rows {
            if row.revision <= view.revision {
                continue;
            }
            let entry = Entry::new(env, row);
            view.revision = entry.served.revision;
            view.configs.insert(entry.served.config.clone(), entry.clone());
            view.recent.push_back(entry);
            while view.recent.len() > self.ring {
                view.recent.pop_front();
            }
        }
        view.compacted = view.compacted.max(view.revision - self.retain);
        let revision = view.revision;
        drop(view);
        state.revision.send_replace(revision);
    }

    /// Reads the change log after what this replica has and applies it; reloads everything
    /// when the log was pruned past this replica's revision.
    async fn refresh(&self, env: &EnvKey, state: &EnvState) -> ConfigResult<()> {
        let _guard = state.refreshing.lock().await;
        loop {
            let have = state.revision();
            let rows = self.repository.changes_since(env, have, CATCH_UP_BATCH).await?;
            if rows.is_empty() {
                return Ok(());
            }
            if rows.first().map(|row| row.revision) != Some(have + 1) {
                return self.reload(env, state).await;
            }
            let full = rows.len() as i64 == CATCH_UP_BATCH;
            self.apply(env, state, rows);
            if !full {
                return Ok(());
            }
        }
    }

    async fn reload(&self, env: &EnvKey, state: &EnvState) -> ConfigResult<()> {
        let (environment, served) = self.repository.served(env).await?;
        let mut view = state.write();
        view.revision = environment.revision;
        view.compacted = environment.compacted;
        view.configs = served
            .into_iter()
            .map(|served| (served.config.clone(), Entry::new(env, served)))
            .collect();
        view.recent.clear();
        drop(view);
        state.revision.send_replace(environment.revision);
        Ok(())
    }

    /// Follows the bus: refreshes a loaded environment when another replica announces a change.
    /// When the subscription ends (Redis restarted, connection lost) it subscribes again and
    /// catches up every loaded environment from the change log, so nothing announced in
    /// between is missed.
    pub async fn follow_bus(self: Arc<Self>, shutdown: switchyard_platform::Shutdown) {
        let mut backoff = Duration::from_millis(100);
        let mut reconnecting = false;
        loop {
            let mut messages = match self.bus.subscribe(TOPIC).await {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, "subscribing to the change bus failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            if reconnecting {
                tracing::info!("change bus subscription restored; catching up");
                self.refresh_all().await;
            }
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    message = messages.next() => message,
                };
                let Some(message) = message else { break };
                self.on_announcement(&message.payload).await;
            }
            tracing::warn!("change bus subscription ended; resubscribing");
            reconnecting = true;
        }
    }

    async fn on_announcement(&self, payload: &[u8]) {
        let Ok(announcement) = serde_json::from_slice::<Announcement>(payload) else {
            return;
        };
        let env = EnvKey::new(&announcement.tenant, &announcement.project, &announcement.environment);
        let Some(state) = self.loaded(&env) else { return };
        if announcement.revision <= state.revision() {
            return;
        }
        if let Err(error) = self.refresh(&env, &state).await {
            tracing::warn!(%error, "refreshing after a bus announcement failed");
        }
    }

    /// Brings every loaded environment up to what the database holds, now.
    pub async fn catch_up(&self) {
        self.refresh_all().await;
    }

    /// Re-reads the change log of every loaded environment.
    async fn refresh_all(&self) {
        let loaded: Vec<(EnvKey, Arc<EnvState>)> = {
            let envs = self.envs.read().unwrap_or_else(|poison| poison.into_inner());
            envs.iter().map(|(key, state)| (key.clone(), state.clone())).collect()
        };
        for (env, state) in loaded {
            if let Err(error) = self.refresh(&env, &state).await {
                tracing::warn!(%error, environment = %env.resource(), "catching up failed");
            }
        }
    }

    /// Every `interval`, re-reads the change log of each loaded environment: replicas converge
    /// even when bus messages were lost (Redis down, a reconnect), and fetch records are saved.
    pub async fn resync_every(self: Arc<Self>, interval: Duration, shutdown: switchyard_platform::Shutdown) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.flush_fetches().await;
                    return;
                }
                _ = tokio::time::sleep(interval) => {}
            }
            self.refresh_all().await;
            self.flush_fetches().await;
        }
    }

    /// The changes after `since`: `None` when there are none yet.
    ///
    /// A `since` ahead of this replica is first checked against the database (another replica
    /// may be ahead of this one); still ahead, it is a revision this environment never had —
    /// a restored database, a failover to an older copy — and the watcher gets a snapshot at
    /// the real revision, as a Consul blocking query does when the index goes backwards.
    async fn batch_after(&self, env: &EnvKey, state: &EnvState, since: i64) -> ConfigResult<Option<Batch>> {
        if since > state.revision() {
            self.refresh(env, state).await?;
        }
        {
            let view = state.read();
            if since == 0 || since < view.compacted || since > view.revision {
                return Ok(Some(snapshot_of(&view)));
            }
            if since == view.revision {
                return Ok(None);
            }
            let covered = view
                .recent
                .front()
                .is_some_and(|first| first.served.revision <= since + 1);
            if covered {
                let entries: Vec<Arc<Entry>> = view
                    .recent
                    .iter()
                    .filter(|entry| entry.served.revision > since)
                    .cloned()
                    .collect();
                return Ok(Some(Batch {
                    revision: view.revision,
                    snapshot: false,
                    entries,
                }));
            }
        }
        let rows = self.repository.changes_since(env, since, CATCH_UP_BATCH).await?;
        if rows.first().map(|row| row.revision) != Some(since + 1) {
            // Pruned between our check and the read: the watcher needs a snapshot.
            return Ok(Some(snapshot_of(&state.read())));
        }
        let revision = rows.last().map(|row| row.revision).unwrap_or(since);
        Ok(Some(Batch {
            revision,
            snapshot: false,
            entries: rows.into_iter().map(|row| Entry::new(env, row)).collect(),
        }))
    }

    /// Every change after `since`, then each new one as it happens.
    pub async fn watch(
        self: Arc<Self>,
        env: EnvKey,
        since: i64,
    ) -> ConfigResult<impl Stream<Item = ConfigResult<Batch>> + Send + 'static> {
        let state = self.state(&env).await?;
        let changes = state.revision.subscribe();
        let start = WatchCursor {
            delivery: self,
            env,
            state,
            changes,
            since,
            failed: false,
        };
        Ok(futures::stream::unfold(start, |mut cursor| async move {
            if cursor.failed {
                return None;
            }
            loop {
                cursor.changes.borrow_and_update();
                match cursor
                    .delivery
                    .batch_after(&cursor.env, &cursor.state, cursor.since)
                    .await
                {
                    Ok(Some(batch)) => {
                        cursor.since = batch.revision;
                        return Some((Ok(batch), cursor));
                    }
                    Ok(None) => {
                        if cursor.changes.changed().await.is_err() {
                            return None;
                        }
                    }
                    Err(error) => {
                        cursor.failed = true;
                        return Some((Err(error), cursor));
                    }
                }
            }
        }))
    }

    /// The changes after `since`, waiting up to `wait` for one; an empty batch at the current
    /// revision when nothing changed in time.
    pub async fn poll(&self, env: &EnvKey, since: i64, wait: Duration) -> ConfigResult<Batch> {
        let state = self.state(env).await?;
        let mut changes = state.revision.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            changes.borrow_and_update();
            if let Some(batch) = self.batch_after(env, &state, since).await? {
                return Ok(batch);
            }
            if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                // The client's own revision: a change applied after the check above must not
                // be reported as seen.
                return Ok(Batch {
                    revision: since,
                    snapshot: false,
                    entries: Vec::new(),
                });
            }
        }
    }

    /// Notes a fetch in memory; written to the database on the next resync.
    pub fn record_fetch(&self, fetch: Fetch) {
        let key = (
            fetch.env.clone(),
            fetch.config.clone(),
            fetch.service.clone(),
            fetch.instance.clone(),
        );
        let mut fetches = self.fetches.lock().unwrap_or_else(|poison| poison.into_inner());
        let count = fetches.get(&key).map(|(_, _, count)| *count).unwrap_or(0);
        fetches.insert(key, (fetch, now_ms(), count + 1));
    }

    /// Notes that `client_id` reads `config` (see [`super::sightings`]).
    pub fn record_sighting(&self, env: &EnvKey, config: &str, client_id: &str) {
        self.sightings.note(env, config, client_id);
    }

    /// Writes the fetches and sightings noted since the last flush.
    pub async fn flush_fetches(&self) {
        let sightings = self.sightings.drain();
        if !sightings.is_empty()
            && let Err(error) = self.repository.record_sightings(&sightings).await
        {
            tracing::warn!(%error, "recording client sightings failed");
        }
        let pending: Vec<(Fetch, i64, u64)> = {
            let mut fetches = self.fetches.lock().unwrap_or_else(|poison| poison.into_inner());
            fetches.drain().map(|(_, pending)| pending).collect()
        };
        if pending.is_empty() {
            return;
        }
        if let Err(error) = self.repository.record_fetches(&pending).await {
            tracing::warn!(%error, "recording config fetches failed");
        }
    }
}

struct WatchCursor<R> {
    delivery: Arc<Delivery<R>>,
    env: EnvKey,
    state: Arc<EnvState>,
    changes: watch::Receiver<i64>,
    since: i64,
    failed: bool,
}

fn snapshot_of(view: &EnvView) -> Batch {
    let mut entries: Vec<Arc<Entry>> = view.configs.values().cloned().collect();
    entries.sort_by(|a, b| a.served.config.cmp(&b.served.config));
    Batch {
        revision: view.revision,
        snapshot: true,
        entries,
    }
}
